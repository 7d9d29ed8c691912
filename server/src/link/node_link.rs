//! The sending half of the link to one node ([`NodeLink`]): frames queued in order and written
//! by the link's own task, so that nobody writes to the socket while holding a lock of the
//! relay. A remote sender's [`crate::route::endpoint::Endpoint`] holds one, so that the relay's
//! effects tell it what becomes of its cmds and streams.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crvm_proto::ServerMsg;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::frame::{self, Msg};
use crate::ids::LoginGen;

/// The sending half of the link to one node.
#[derive(Debug, Clone)]
pub struct NodeLink {
    node: Arc<str>,
    out: Arc<Out>,
}

/// A dialled link's socket and what waits to be written to it, in order, by the link's writer
/// task: frames sent while it writes go out together in its next write, and nobody writes to
/// the socket while holding a lock of the relay.
#[derive(Debug)]
struct Out {
    stream: TcpStream,
    q: Mutex<OutQ>,
    wake: Notify,
    /// Closed by [`super::Links::lost`]: nothing more goes through it.
    closed: AtomicBool,
}

#[derive(Debug, Default)]
struct OutQ {
    pending: Vec<u8>,
    failed: bool,
}

impl NodeLink {
    /// A link dialled on `stream` to `node`; [`NodeLink::writer`] is the task that writes it.
    pub(crate) fn new(node: &str, stream: TcpStream) -> NodeLink {
        NodeLink {
            node: node.into(),
            out: Arc::new(Out {
                stream,
                q: Mutex::default(),
                wake: Notify::new(),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Writes what is sent on the link until it is dropped or a write fails.
    pub(super) fn writer(&self) -> impl std::future::Future<Output = ()> {
        write_link(Arc::clone(&self.out))
    }

    /// Sends `msg` (and its attachment) to the node, in order; dropped if the link is gone
    /// (its loss ends everything it carried).
    pub fn send(&self, msg: &Msg, attachment: &[u8]) {
        self.send_with(|f| frame::put(f, msg, attachment));
    }

    /// Appends a frame to what waits for the link's writer, and wakes it if it was idle.
    pub(super) fn send_with(&self, put: impl FnOnce(&mut Vec<u8>)) {
        let mut q = self.out.q.lock();
        if q.failed {
            return;
        }
        let was_empty = q.pending.is_empty();
        put(&mut q.pending);
        drop(q);
        if was_empty {
            self.out.wake.notify_one();
        }
    }

    /// Closes the link (both directions of the socket): nothing more is sent on it.
    pub(super) fn close(&self) {
        self.out.closed.store(true, Ordering::Release);
        self.out.q.lock().failed = true;
        use std::os::fd::AsRawFd;
        // SAFETY: shutdown on the socket this link owns; it stays open (and valid) until the
        // last holder drops it.
        unsafe { libc::shutdown(self.out.stream.as_raw_fd(), libc::SHUT_RDWR) };
        self.out.wake.notify_one();
    }

    pub(super) fn is_closed(&self) -> bool {
        self.out.closed.load(Ordering::Acquire)
    }

    /// Tells session `gen` of that node `msg`.
    pub fn deliver(&self, gen: LoginGen, msg: ServerMsg) {
        match msg {
            ServerMsg::CmdDone { ns, code } => {
                self.send_with(|f| frame::put_cmd_done(f, gen, &ns, code))
            }
            msg => self.send(&Msg::Deliver { gen, msg }, &[]),
        }
    }

    /// Asks that node to answer `fence_back` for session `gen` (which left it for this one)
    /// behind whatever it passes on to it.
    pub fn fence(&self, gen: LoginGen) {
        self.send(&Msg::Fence { gen }, &[]);
    }

    pub fn node(&self) -> &str {
        &self.node
    }
}

/// Writes what waits for a dialled link, in order, until the link is dropped (no peer holds
/// it) or a write fails.
async fn write_link(out: Arc<Out>) {
    let mut data = Vec::new();
    loop {
        out.wake.notified().await;
        loop {
            {
                let mut q = out.q.lock();
                if q.failed {
                    return;
                }
                if q.pending.is_empty() {
                    break;
                }
                // The two buffers swap: each keeps its capacity for the next round.
                std::mem::swap(&mut q.pending, &mut data);
            }
            let mut off = 0;
            while off < data.len() {
                if out.stream.writable().await.is_err() {
                    out.q.lock().failed = true;
                    return;
                }
                match out.stream.try_write(&data[off..]) {
                    Ok(n) => off += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        out.q.lock().failed = true;
                        return;
                    }
                }
            }
            data.clear();
        }
        // Only this task and the peers hold the link: when no peer is left, it is dropped.
        if Arc::strong_count(&out) == 1 {
            return;
        }
    }
}
