//! The outbound side of a connection: a queue bounded in bytes, and the writer task that drains
//! it onto the socket.
//!
//! Anyone may push to any connection's outbox (presence fan-out, kicks, shutdown) without ever
//! waiting: a push that would take the queue over its bound closes that connection instead of
//! blocking the pusher or growing memory. A slow or hostile reader therefore only ever costs
//! the bound, and only itself.
//!
//! Two queues: control messages, and (lower priority) data chunks of transfers. The writer takes
//! every queued control message before at most one data chunk, so signalling never waits behind
//! more than one chunk.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crvm_proto::frame::{self, HEADER_LEN};
use crvm_proto::msg::xfer;
use crvm_proto::{Encoder, Kind, ServerMsg};
use parking_lot::Mutex;
use tokio::io::AsyncWrite;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

/// Bound of the control queue of one connection.
pub const CONTROL_LIMIT: usize = 4 * 1024 * 1024;
/// Bound of the data queue of one connection: the flow-control windows of as many transfers
/// as a session may receive at once, with their frame headers. The relay enforces each window,
/// so only a bug could reach it.
pub const DATA_LIMIT: usize = xfer::MAX_INCOMING * (xfer::WINDOW as usize + 4096);
/// Most bytes the writer takes from the queues for one socket write.
const BATCH_BYTES: usize = 256 * 1024;
/// Largest write buffer a connection keeps between writes (one data chunk and its header fit).
const KEEP_BYTES: usize = 80 * 1024;
/// A write this small ends a burst: a larger write buffer kept from the burst is given back.
const SMALL_WRITE: usize = 1024;
/// Frames the writer's batch keeps room for once a burst is over.
const SMALL_BATCH: usize = 16;

/// One outgoing frame, before it gets its sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// A control message's JSON (shared, so a fan-out serialises once).
    Control(Arc<[u8]>),
    /// A control message's JSON with a binary attachment (a relayed cmd).
    Attached(Arc<[u8]>, Vec<u8>),
    /// A data frame payload: 8-byte stream ID, then the chunk.
    Data(Vec<u8>),
    Ping,
    Pong,
}

impl Out {
    /// A control frame carrying `msg`.
    pub fn msg(msg: &ServerMsg) -> Out {
        Out::Control(crvm_proto::msg::to_json(msg).into())
    }

    /// A control frame carrying `msg` and `attachment`.
    pub fn attached(msg: &ServerMsg, attachment: Vec<u8>) -> Out {
        Out::Attached(crvm_proto::msg::to_json(msg).into(), attachment)
    }

    /// Bytes this frame will take on the wire; what the bounds count.
    pub fn cost(&self) -> usize {
        HEADER_LEN
            + match self {
                Out::Control(json) => 4 + json.len(),
                Out::Attached(json, att) => 4 + json.len() + att.len(),
                Out::Data(p) => p.len(),
                Out::Ping | Out::Pong => 0,
            }
    }

    /// Appends this frame to `out`, header first, without an intermediate buffer.
    fn encode(&self, enc: &mut Encoder, ack: u64, out: &mut Vec<u8>) {
        let kind = match self {
            Out::Control(_) | Out::Attached(..) => Kind::Control,
            Out::Data(_) => Kind::Data,
            Out::Ping => Kind::Ping,
            Out::Pong => Kind::Pong,
        };
        out.extend_from_slice(&enc.header(kind, ack, self.cost() - HEADER_LEN));
        match self {
            Out::Control(json) => {
                out.extend_from_slice(&frame::control_prefix(json));
                out.extend_from_slice(json);
            }
            Out::Attached(json, att) => {
                out.extend_from_slice(&frame::control_prefix(json));
                out.extend_from_slice(json);
                out.extend_from_slice(att);
            }
            Out::Data(p) => out.extend_from_slice(p),
            Out::Ping | Out::Pong => {}
        }
    }
}

/// Life cycle of an outbox (and so of its connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Accepting pushes.
    Open,
    /// No more pushes; the writer sends what is queued, then shuts the socket down.
    /// `code` is that of the final `Close` message, if one was queued.
    Closing { code: Option<i32> },
    /// A push went over the bound: the connection is dropped without flushing.
    Overflow,
    /// Writing to the socket failed.
    Broken,
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The connection is closing or gone; the message is dropped.
    Closed,
    /// The bound was hit; the connection has been switched to [`State::Overflow`].
    Overflow,
}

/// What the writer gets from [`Outbox::next_batch`].
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// The batch holds frames to write.
    Ready,
    /// Closing and everything has been handed out.
    Drained,
    /// Stop now without writing ([`State::Overflow`] or [`State::Broken`]).
    Stop,
}

#[derive(Debug)]
struct Queues {
    control: VecDeque<Out>,
    data: VecDeque<Out>,
    control_bytes: usize,
    data_bytes: usize,
    state: State,
}

#[derive(Debug)]
struct Inner {
    q: Mutex<Queues>,
    /// Wakes the single writer; `notify_one` keeps a permit, so no wake-up is lost.
    wake: Notify,
    /// Wakes whoever waits in [`Outbox::stopped`] when the state leaves `Open`. (A `Notify`
    /// rather than a `watch` channel: a few dozen bytes per connection instead of hundreds.)
    stopped: Notify,
    control_limit: usize,
    data_limit: usize,
}

/// Handle to one connection's outbound queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox(Arc<Inner>);

impl Default for Outbox {
    fn default() -> Self {
        Outbox::new(CONTROL_LIMIT, DATA_LIMIT)
    }
}

impl Outbox {
    /// An open outbox with the given bounds in bytes.
    pub fn new(control_limit: usize, data_limit: usize) -> Outbox {
        Outbox(Arc::new(Inner {
            q: Mutex::new(Queues {
                control: VecDeque::new(),
                data: VecDeque::new(),
                control_bytes: 0,
                data_bytes: 0,
                state: State::Open,
            }),
            wake: Notify::new(),
            stopped: Notify::new(),
            control_limit,
            data_limit,
        }))
    }

    /// Queues a control-priority frame (messages, pings, pongs).
    pub fn push(&self, out: Out) -> Result<(), PushError> {
        self.push_to(out, false)
    }

    /// Queues a data chunk (lower priority than every control frame).
    pub fn push_data(&self, payload: Vec<u8>) -> Result<(), PushError> {
        self.push_to(Out::Data(payload), true)
    }

    fn push_to(&self, out: Out, data: bool) -> Result<(), PushError> {
        let cost = out.cost();
        let mut guard = self.0.q.lock();
        // Reborrow once so the queue and its byte count can be borrowed side by side.
        let q = &mut *guard;
        if q.state != State::Open {
            return Err(PushError::Closed);
        }
        let (queue, bytes, limit) = if data {
            (&mut q.data, q.data_bytes, self.0.data_limit)
        } else {
            (&mut q.control, q.control_bytes, self.0.control_limit)
        };
        // A frame alone in its queue always fits, so one large reply cannot wedge a connection.
        if !queue.is_empty() && bytes + cost > limit {
            q.control.clear();
            q.data.clear();
            q.control_bytes = 0;
            q.data_bytes = 0;
            self.set_state(q, State::Overflow);
            return Err(PushError::Overflow);
        }
        queue.push_back(out);
        if data {
            q.data_bytes += cost;
        } else {
            q.control_bytes += cost;
        }
        drop(guard);
        self.0.wake.notify_one();
        Ok(())
    }

    /// Queues `msg` as the last frame (whatever the bound) and starts closing: nothing pushed
    /// afterwards is sent. Returns false if the outbox was already closing or gone, in which
    /// case the first close stands.
    pub fn close_with(&self, msg: &ServerMsg) -> bool {
        let code = match msg {
            ServerMsg::Close { code, .. } => Some(*code),
            _ => None,
        };
        let out = Out::msg(msg);
        let mut q = self.0.q.lock();
        if q.state != State::Open {
            return false;
        }
        q.control_bytes += out.cost();
        q.control.push_back(out);
        self.set_state(&mut q, State::Closing { code });
        true
    }

    /// Starts closing without a final message: what is queued is still sent.
    pub fn close(&self) {
        let mut q = self.0.q.lock();
        if q.state == State::Open {
            self.set_state(&mut q, State::Closing { code: None });
        }
    }

    /// Marks the socket as unwritable; queued frames are dropped.
    pub fn broken(&self) {
        let mut q = self.0.q.lock();
        if matches!(q.state, State::Open | State::Closing { .. }) {
            q.control.clear();
            q.data.clear();
            self.set_state(&mut q, State::Broken);
        }
    }

    fn set_state(&self, q: &mut Queues, state: State) {
        q.state = state;
        self.0.stopped.notify_waiters();
        self.0.wake.notify_one();
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.0.q.lock().state
    }

    /// Whether pushes are still accepted.
    pub fn is_open(&self) -> bool {
        self.state() == State::Open
    }

    /// Bytes queued and not yet taken by the writer.
    pub fn queued_bytes(&self) -> usize {
        let q = self.0.q.lock();
        q.control_bytes + q.data_bytes
    }

    /// Resolves once the outbox is no longer [`State::Open`].
    pub async fn stopped(&self) {
        loop {
            let notified = self.0.stopped.notified();
            tokio::pin!(notified);
            // Registered before the state is read, so a change right after is not missed.
            notified.as_mut().enable();
            if !self.is_open() {
                return;
            }
            notified.await;
        }
    }

    /// Moves the next frames into `batch`: every queued control frame (up to a batch size), or
    /// else one data chunk. Waits while there is nothing to send. Only one task (the writer) may
    /// call this.
    pub async fn next_batch(&self, batch: &mut Vec<Out>) -> Flow {
        loop {
            {
                let mut q = self.0.q.lock();
                if matches!(q.state, State::Overflow | State::Broken) {
                    return Flow::Stop;
                }
                let mut taken = 0;
                while taken < BATCH_BYTES {
                    let Some(out) = q.control.pop_front() else {
                        break;
                    };
                    let cost = out.cost();
                    q.control_bytes -= cost;
                    taken += cost;
                    batch.push(out);
                }
                if batch.is_empty() {
                    if let Some(out) = q.data.pop_front() {
                        q.data_bytes -= out.cost();
                        batch.push(out);
                    }
                }
                if !batch.is_empty() {
                    return Flow::Ready;
                }
                if matches!(q.state, State::Closing { .. }) {
                    return Flow::Drained;
                }
            }
            self.0.wake.notified().await;
        }
    }
}

/// The writer task of a connection: frames whatever the outbox hands out (each frame's `ack` is
/// the latest sequence number the reader decoded), pings after `heartbeat` of silence once the
/// connection has said anything, and shuts the socket's write side down when the outbox drains.
pub async fn run_writer(
    mut wr: impl AsyncWrite + Unpin,
    outbox: Outbox,
    ack: Arc<AtomicU64>,
    heartbeat: Duration,
) {
    let mut enc = Encoder::new();
    let mut batch = Vec::new();
    let mut bytes = Vec::new();
    let mut sent_any = false;
    loop {
        let flow = if sent_any {
            match tokio::time::timeout(heartbeat, outbox.next_batch(&mut batch)).await {
                Ok(flow) => flow,
                Err(_) => {
                    batch.push(Out::Ping);
                    Flow::Ready
                }
            }
        } else {
            // No pings before the handshake's answer: the first frame is Welcome or Close.
            outbox.next_batch(&mut batch).await
        };
        match flow {
            Flow::Ready => {}
            Flow::Drained => {
                let _ = wr.shutdown().await;
                return;
            }
            Flow::Stop => return,
        }
        let ack = ack.load(Ordering::Acquire);
        bytes.clear();
        let frames = batch.len();
        for out in batch.drain(..) {
            out.encode(&mut enc, ack, &mut bytes);
        }
        if wr.write_all(&bytes).await.is_err() {
            outbox.broken();
            return;
        }
        // Give a burst's memory back rather than keep it per connection: at once when it is
        // large, otherwise at the first small write after it.
        if bytes.capacity() > KEEP_BYTES
            || (bytes.len() <= SMALL_WRITE && bytes.capacity() > 4 * SMALL_WRITE)
        {
            bytes = Vec::new();
        }
        if batch.capacity() > SMALL_BATCH && frames <= SMALL_BATCH / 4 {
            batch = Vec::new();
        }
        sent_any = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(n: usize) -> Out {
        Out::Control(vec![b'x'; n].into())
    }

    #[tokio::test]
    async fn control_before_data_and_one_chunk_at_a_time() {
        let ob = Outbox::default();
        ob.push_data(vec![0; 16]).unwrap();
        ob.push_data(vec![1; 16]).unwrap();
        ob.push(json(3)).unwrap();
        ob.push(Out::Pong).unwrap();
        let mut b = Vec::new();
        assert_eq!(ob.next_batch(&mut b).await, Flow::Ready);
        assert_eq!(b, vec![json(3), Out::Pong]);
        b.clear();
        assert_eq!(ob.next_batch(&mut b).await, Flow::Ready);
        assert_eq!(b, vec![Out::Data(vec![0; 16])]);
        b.clear();
        ob.push(json(1)).unwrap();
        assert_eq!(ob.next_batch(&mut b).await, Flow::Ready);
        assert_eq!(b, vec![json(1)]);
        b.clear();
        assert_eq!(ob.next_batch(&mut b).await, Flow::Ready);
        assert_eq!(b, vec![Out::Data(vec![1; 16])]);
        assert_eq!(ob.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn overflow_closes_instead_of_growing() {
        let ob = Outbox::new(1000, 1000);
        // A single oversized frame fits an empty queue.
        ob.push(json(5000)).unwrap();
        let mut b = Vec::new();
        assert_eq!(ob.next_batch(&mut b).await, Flow::Ready);
        let mut pushed = 0;
        let err = loop {
            match ob.push(json(100)) {
                Ok(()) => pushed += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(err, PushError::Overflow);
        assert_eq!(pushed, 1000 / json(100).cost());
        assert_eq!(ob.state(), State::Overflow);
        assert_eq!(ob.queued_bytes(), 0);
        assert_eq!(ob.push(json(1)), Err(PushError::Closed));
        ob.stopped().await;
        assert_eq!(ob.next_batch(&mut b).await, Flow::Stop);
    }

    #[tokio::test]
    async fn close_with_sends_last_then_drains() {
        let ob = Outbox::new(100, 100);
        ob.push(json(50)).unwrap();
        let close = ServerMsg::Close {
            code: 206,
            reason: "bye".into(),
        };
        // The final message is queued even past the bound.
        assert!(ob.close_with(&close));
        assert!(!ob.close_with(&close));
        assert_eq!(ob.push(json(1)), Err(PushError::Closed));
        assert_eq!(ob.state(), State::Closing { code: Some(206) });
        let mut b = Vec::new();
        assert_eq!(ob.next_batch(&mut b).await, Flow::Ready);
        assert_eq!(b, vec![json(50), Out::msg(&close)]);
        b.clear();
        assert_eq!(ob.next_batch(&mut b).await, Flow::Drained);
    }

    #[tokio::test]
    async fn writer_wakes_on_push() {
        let ob = Outbox::default();
        let waiter = {
            let ob = ob.clone();
            tokio::spawn(async move {
                let mut b = Vec::new();
                let flow = ob.next_batch(&mut b).await;
                (flow, b)
            })
        };
        tokio::task::yield_now().await;
        ob.push(Out::Ping).unwrap();
        assert_eq!(waiter.await.unwrap(), (Flow::Ready, vec![Out::Ping]));
    }
}
