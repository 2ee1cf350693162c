//! Shutdown: one [`CancellationToken`] reaches every task; SIGINT and SIGTERM fire it.

use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGINT (Ctrl-C) or SIGTERM (Docker, systemd).
///
/// # Errors
/// The signal handlers cannot be installed.
pub fn cancel_on_signals(token: CancellationToken) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            let which = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                () = token.cancelled() => return,
            };
            tracing::info!(signal = which, "shutting down");
            token.cancel();
        });
    }
    #[cfg(not(unix))]
    {
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!(signal = "ctrl-c", "shutting down");
                token.cancel();
            }
        });
    }
    Ok(())
}
