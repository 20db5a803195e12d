//! Test support: a server that holds AWS calls open, for tests of the
//! timeouts of whatever client is built on [`crate::emulator_sdk_config_with`].

use tokio::net::TcpListener;

/// Starts a listener on 127.0.0.1 that accepts every connection, reads
/// nothing, answers nothing and keeps the sockets open (a half-open
/// connection, the fault production sees most), and returns its
/// `http://` endpoint. It runs until the runtime stops.
///
/// # Errors
/// When no port on 127.0.0.1 can be bound.
pub async fn hung_endpoint() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    Ok(format!("http://{address}"))
}
