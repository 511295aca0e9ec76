//! Talking to the running monitor: a Unix socket in the home, one JSON request and one
//! JSON reply per line. Another `ganga` asks for the monitor's state, for an immediate
//! poll of some jobs, or for it to stop.

use std::path::Path;
use std::time::Duration;

use ganga_core::{Capabilities, JobId, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

/// What another process asks the monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "ask", rename_all = "snake_case")]
pub enum ControlRequest {
    /// How it is doing.
    Status,
    /// Poll these jobs' units now (they were just submitted, or someone waits for them).
    Poll { jobs: Vec<JobId> },
    /// Stop, committing what is in flight.
    Stop,
}

/// The monitor's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum ControlReply {
    Status(MonitorStatus),
    Done,
    Refused { reason: String },
}

/// What `ganga monitor status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorStatus {
    pub pid: u32,
    pub since: Timestamp,
    /// Polls made so far, over all backends.
    pub polls: u64,
    pub last_poll: Option<Timestamp>,
    pub active_units: usize,
    /// Units whose outputs are being collected now.
    pub finalising: usize,
    pub backends: Vec<BackendStatus>,
}

/// One backend as the monitor drives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendStatus {
    pub name: String,
    pub active_units: usize,
    pub last_poll: Option<Timestamp>,
    /// The interval in use now (stretched while nothing changes).
    pub interval_secs: f64,
    /// Failed polls in a row, and the last failure.
    pub errors: u32,
    pub last_error: Option<String>,
    pub capabilities: Capabilities,
}

/// A request and where its reply goes.
pub(crate) type Asked = (ControlRequest, oneshot::Sender<ControlReply>);

/// Replies forwarded to the monitor but not yet written back: the monitor waits for them
/// before it ends, so that the process asking it to stop hears that it did.
pub(crate) type Unanswered = std::sync::Arc<std::sync::atomic::AtomicUsize>;

/// Accepts connections on `path` and forwards their requests. Replaces a socket file
/// left by a monitor that died (the caller holds the monitor lease).
pub(crate) fn listen(
    path: &Path,
    to_monitor: mpsc::Sender<Asked>,
    unanswered: Unanswered,
) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let to_monitor = to_monitor.clone();
            let unanswered = unanswered.clone();
            tokio::spawn(async move {
                if let Err(e) = serve(stream, to_monitor, unanswered).await {
                    tracing::debug!("control connection: {e}");
                }
            });
        }
    });
    Ok(())
}

async fn serve(
    stream: UnixStream,
    to_monitor: mpsc::Sender<Asked>,
    unanswered: Unanswered,
) -> std::io::Result<()> {
    use std::sync::atomic::Ordering;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let (reply, forwarded) = match serde_json::from_str::<ControlRequest>(&line) {
            Err(e) => {
                let reason = format!("not a request: {e}");
                (ControlReply::Refused { reason }, false)
            }
            Ok(request) => {
                let (tx, rx) = oneshot::channel();
                unanswered.fetch_add(1, Ordering::SeqCst);
                if to_monitor.send((request, tx)).await.is_err() {
                    unanswered.fetch_sub(1, Ordering::SeqCst);
                    return Ok(());
                }
                let reply = rx.await.unwrap_or(ControlReply::Refused {
                    reason: "the monitor is stopping".into(),
                });
                (reply, true)
            }
        };
        let mut text = serde_json::to_string(&reply).map_err(std::io::Error::other)?;
        text.push('\n');
        let written = write.write_all(text.as_bytes()).await;
        if forwarded {
            unanswered.fetch_sub(1, Ordering::SeqCst);
        }
        written?;
    }
    Ok(())
}

/// Asks the monitor listening on `path`. `Ok(None)`: no monitor listens there.
pub async fn ask(
    path: &Path,
    request: &ControlRequest,
    timeout: Duration,
) -> std::io::Result<Option<ControlReply>> {
    let talk = async {
        let stream = match UnixStream::connect(path).await {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let (read, mut write) = stream.into_split();
        let mut text = serde_json::to_string(request).map_err(std::io::Error::other)?;
        text.push('\n');
        write.write_all(text.as_bytes()).await?;
        let mut lines = BufReader::new(read).lines();
        match lines.next_line().await? {
            Some(line) => serde_json::from_str(&line)
                .map(Some)
                .map_err(std::io::Error::other),
            None => Ok(None),
        }
    };
    tokio::time::timeout(timeout, talk)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the monitor at {} did not answer", path.display()),
            ))
        })
}
