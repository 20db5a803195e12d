//! The text form of a [`Report`]: a header, one aligned line per shard,
//! one per worker, and the metrics addresses that could not be read.

use std::fmt::Write as _;

use super::{Report, ShardRow};

/// Digits of a sequence number shown in text (the JSON form has all 56).
const SEQUENCE_TAIL: usize = 12;

/// Renders `report` as aligned text.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let owners = report.workers.len();
    let _ = writeln!(
        out,
        "pipeline {} · stream {} · lease table {} ({}) · {} shard{}, {} worker{} · {}",
        report.pipeline,
        report.stream,
        report.table,
        report.store,
        report.shards.len(),
        plural(report.shards.len()),
        owners,
        plural(owners),
        timestamp(report.at_ms)
    );
    if report.shards.is_empty() {
        out.push_str("no leases yet (no worker has synced the stream's shards into the table)\n");
    } else {
        let rows: Vec<Vec<String>> = report.shards.iter().map(shard_cells).collect();
        table(&mut out, &["SHARD", "OWNER", "CHECKPOINT", "COUNTER", "STATE", "LAG ms", "REC/S"], &rows);
    }
    if !report.workers.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = report
            .workers
            .iter()
            .map(|w| {
                vec![
                    w.worker_id.clone(),
                    w.leases.to_string(),
                    number(w.records_per_second, 1),
                    number(w.max_millis_behind_latest, 0),
                    w.metrics.clone().unwrap_or_else(|| "-".to_owned()),
                ]
            })
            .collect();
        table(&mut out, &["WORKER", "LEASES", "REC/S", "MAX LAG ms", "METRICS"], &rows);
    }
    for source in &report.metrics {
        if let Some(error) = &source.error {
            let _ = writeln!(out, "metrics {}: {error}", source.url);
        }
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn shard_cells(shard: &ShardRow) -> Vec<String> {
    let checkpoint = if shard.checkpoint.bytes().all(|b| b.is_ascii_digit()) && shard.checkpoint.len() > SEQUENCE_TAIL {
        format!("…{}", &shard.checkpoint[shard.checkpoint.len() - SEQUENCE_TAIL..])
    } else {
        shard.checkpoint.clone()
    };
    let checkpoint = if shard.checkpoint_sub_sequence_number > 0 {
        format!("{checkpoint}/{}", shard.checkpoint_sub_sequence_number)
    } else {
        checkpoint
    };
    let state = match shard.state {
        "ended" if !shard.children.is_empty() => format!("ended → {}", shard.children.join(",")),
        "waiting" => format!("waiting for {}", shard.parents.join(",")),
        other => other.to_owned(),
    };
    vec![
        shard.shard_id.clone(),
        shard.owner.clone().unwrap_or_else(|| "-".to_owned()),
        checkpoint,
        shard.lease_counter.to_string(),
        state,
        number(shard.millis_behind_latest, 0),
        number(shard.records_per_second, 1),
    ]
}

fn number(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

fn timestamp(at_ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(at_ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Appends `rows` under `header`, each column as wide as its widest cell.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |out: &mut String, cells: &[String]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let _ = write!(text, "{cell:<width$}");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(out, &header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>());
    for row in rows {
        line(out, row);
    }
}
