//! Forwards the plugin's `tracing` events to the host's log.
//!
//! A plugin library has its own copy of `tracing` (statics do not cross a
//! `dlopen` boundary), so without this its events would go nowhere. On the
//! first `init` that carries a log function, the SDK installs a minimal
//! subscriber as the library's global default: each event at or above the
//! host's level becomes one line (`message key=value ...`) handed to the
//! host, which logs it with its own subscriber. Spans are not forwarded.

use std::fmt::Write as _;
use std::sync::OnceLock;

use shardline_plugin_abi::{ByteSlice, InitContext, LogFn, LOG_DEBUG, LOG_ERROR, LOG_INFO, LOG_TRACE, LOG_WARN};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

static INSTALLED: OnceLock<()> = OnceLock::new();

/// Installs the forwarder once per library, when the host gave a log
/// function.
pub(crate) fn install(context: &InitContext) {
    let Some(log) = context.log else { return };
    let max = match context.max_level {
        0 => return,
        LOG_ERROR => LevelFilter::ERROR,
        LOG_WARN => LevelFilter::WARN,
        LOG_INFO => LevelFilter::INFO,
        LOG_DEBUG => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    INSTALLED.get_or_init(|| {
        // Fails only when the plugin installed a subscriber of its own,
        // which then wins.
        let _ = tracing::subscriber::set_global_default(Forwarder { log, max });
    });
}

struct Forwarder {
    log: LogFn,
    max: LevelFilter,
}

fn level_code(level: Level) -> u32 {
    match level {
        Level::ERROR => LOG_ERROR,
        Level::WARN => LOG_WARN,
        Level::INFO => LOG_INFO,
        Level::DEBUG => LOG_DEBUG,
        Level::TRACE => LOG_TRACE,
    }
}

#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

impl Subscriber for Forwarder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max)
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = Line::default();
        event.record(&mut line);
        line.message.push_str(&line.fields);
        let target = event.metadata().target();
        // SAFETY: the host's log function takes borrowed UTF-8 slices that
        // are valid for the call, as these are.
        unsafe { (self.log)(level_code(*event.metadata().level()), ByteSlice::new(target.as_bytes()), ByteSlice::new(line.message.as_bytes())) };
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}
