//! The outbound side of a connection: the protocol's out-queue ([`OutQueue`]) bounded in
//! bytes, and the writer task that drains it onto the socket.
//!
//! Anyone may push to any connection's outbox (presence fan-out, kicks, shutdown) without ever
//! waiting: a push that would take the queue over its bound closes that connection instead of
//! blocking the pusher or growing memory. A slow or hostile reader therefore only ever costs
//! the bound, and only itself.
//!
//! Priorities and sequence numbers are the out-queue's: the writer takes every queued control
//! frame before at most one data chunk, so signalling never waits behind more than one chunk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crvm_proto::msg::xfer;
pub use crvm_proto::outq::Out;
use crvm_proto::{Batch, OutQueue, ServerMsg, Unsent};
use parking_lot::Mutex;
use tokio::io::AsyncWrite;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

/// Bound of the control queue of one connection: room for replies and pushes, plus the cmds
/// the relay may have handed this connection and not had acknowledged (the receive window,
/// with each cmd's framing).
pub const CONTROL_LIMIT: usize =
    4 * 1024 * 1024 + xfer::CMD_RECV_WINDOW_BYTES + xfer::CMD_RECV_WINDOW * 256;
/// Bound of the data queue of one connection: the flow-control windows of as many transfers
/// as a session may receive at once, with their frame headers. The relay enforces each window,
/// so only a bug could reach it.
pub const DATA_LIMIT: usize = xfer::MAX_INCOMING * (xfer::WINDOW as usize + 4096);
/// Most bytes the writer encodes for one socket write.
const BATCH_BYTES: usize = 256 * 1024;
/// Largest write buffer a connection keeps between writes while busy…
const KEEP_BYTES: usize = 80 * 1024;
/// …and once a write this small ends a burst.
const KEEP_IDLE: usize = 4 * 1024;

/// Buffers of acknowledged data chunks, for the connections' decoders to read the next chunks
/// into ([`payload_buf`]): a relayed chunk then costs no fresh memory (a page fault per page,
/// and zeroing) at either end of its way through the server.
static PAYLOADS: Mutex<Vec<Vec<u8>>> = parking_lot::const_mutex(Vec::new());
/// Most buffers kept: 4 MiB of 128 KiB chunks, memory the process keeps once it relayed a
/// transfer (as it keeps its other chunk memory: `app.rs`, `keep_freed_memory`).
const KEEP_PAYLOADS: usize = 32;

/// A buffer of `len` bytes (contents unspecified) for a data payload read from a client: one
/// an acknowledged chunk gave back, if any.
pub fn payload_buf(len: usize) -> Vec<u8> {
    let mut v = PAYLOADS.lock().pop().unwrap_or_default();
    // Resized, not cleared: a buffer as long as the last chunk is not zeroed again.
    v.resize(len, 0);
    v
}

/// Largest buffer kept (a chunk of the largest size the libraries send, with its stream ID).
const KEEP_PAYLOAD_BYTES: usize = 256 * 1024;

fn give_back(bufs: Vec<Vec<u8>>) {
    let mut pool = PAYLOADS.lock();
    let room = KEEP_PAYLOADS.saturating_sub(pool.len());
    let kept = bufs
        .into_iter()
        .filter(|b| b.capacity() <= KEEP_PAYLOAD_BYTES);
    pool.extend(kept.take(room));
}

/// What a session holds for its client when it moves to another node.
#[derive(Debug)]
pub struct Moving {
    /// The sequence number the next frame carries.
    pub next: u64,
    /// Numbered frames the client has not acknowledged, in order.
    pub kept: Vec<(u64, Out)>,
    /// Control frames not yet written, in order.
    pub queued: Vec<Out>,
    /// The last numbered frame handled from the client.
    pub handled: u64,
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
    /// A resumable session without a connection (docs/API.md §3.6): pushes are still accepted within
    /// the bounds (and kept, with the unacknowledged tail, for the resume); nothing is written.
    Detached,
}

impl State {
    /// Whether the session was ended by a newer login of its user (`Close{10}`).
    pub fn kicked(self) -> bool {
        self == State::Closing {
            code: Some(crvm_proto::error::CRVIDEOSDK_USER_BEEN_KICKOUT),
        }
    }

    /// Whether pushes are accepted.
    fn accepts(self) -> bool {
        matches!(self, State::Open | State::Detached)
    }
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The connection is closing or gone; the message is dropped.
    Closed,
    /// The bound was hit; the connection has been switched to [`State::Overflow`].
    Overflow,
}

/// What the writer gets from [`Outbox::next_bytes`].
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// The buffer holds frames to write.
    Ready,
    /// Closing and everything has been handed out.
    Drained,
    /// Stop now without writing ([`State::Overflow`] or [`State::Broken`]).
    Stop,
}

#[derive(Debug)]
struct Queues {
    q: OutQueue,
    state: State,
    /// A write failure detaches the session instead of ending it.
    resumable: bool,
    /// Someone waits in [`Outbox::control_flushed`]: the writer wakes it once no control
    /// frame is left queued.
    flush_wanted: bool,
}

#[derive(Debug)]
struct Inner {
    q: Mutex<Queues>,
    /// Wakes the single writer; `notify_one` keeps a permit, so no wake-up is lost.
    wake: Notify,
    /// Wakes whoever waits in [`Outbox::stopped`] when the state leaves `Open`, and in
    /// [`Outbox::control_flushed`] when the writer took the last control frame. (A `Notify`
    /// rather than a `watch` channel: a few dozen bytes per connection instead of hundreds.)
    stopped: Notify,
    control_limit: usize,
    data_limit: usize,
    /// The last numbered frame handled from the client: every frame written acknowledges it.
    ack: AtomicU64,
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
                q: {
                    // Acknowledged chunks' buffers go back to [`PAYLOADS`].
                    let mut q = OutQueue::new();
                    q.recycle_data(true);
                    q
                },
                state: State::Open,
                resumable: false,
                flush_wanted: false,
            }),
            wake: Notify::new(),
            stopped: Notify::new(),
            control_limit,
            data_limit,
            ack: AtomicU64::new(0),
        }))
    }

    /// Whether two handles are the same connection's outbox.
    pub fn same(&self, other: &Outbox) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Queues a control-priority frame (messages, pings, pongs).
    pub fn push(&self, out: Out) -> Result<(), PushError> {
        self.push_to(out, false)
    }

    /// Queues a control message.
    pub fn push_msg(&self, msg: &ServerMsg) -> Result<(), PushError> {
        self.push(Out::msg(msg))
    }

    /// Queues a data chunk (lower priority than every control frame).
    pub fn push_data(&self, payload: Vec<u8>) -> Result<(), PushError> {
        self.push_to(Out::Data(Arc::new(payload)), true)
    }

    /// Queues a presence push about `user`. While the session is detached, pushes about one
    /// user merge into the latest, so a presence flood cannot overflow a held session.
    pub fn push_status(&self, user: &str, out: Out) -> Result<(), PushError> {
        self.push_with(out, false, Some(user))
    }

    fn push_to(&self, out: Out, data: bool) -> Result<(), PushError> {
        self.push_with(out, data, None)
    }

    fn push_with(&self, out: Out, data: bool, merge: Option<&str>) -> Result<(), PushError> {
        let cost = out.cost();
        let mut q = self.0.q.lock();
        if !q.state.accepts() {
            return Err(PushError::Closed);
        }
        // What is kept unacknowledged (for a resume) counts with what is queued.
        let tail_control = q.q.tail_control_bytes();
        let (bytes, limit) = if data {
            let tail_data = q.q.tail_bytes() - tail_control;
            (q.q.data_bytes() + tail_data, self.0.data_limit)
        } else {
            (q.q.control_bytes() + tail_control, self.0.control_limit)
        };
        // A frame alone in its queue always fits, so one large reply cannot wedge a connection.
        if bytes > 0 && bytes + cost > limit {
            q.q.clear();
            self.set_state(&mut q, State::Overflow);
            crate::metrics::get().overflow();
            return Err(PushError::Overflow);
        }
        match merge {
            Some(key) if q.state == State::Detached => {
                q.q.push_merged(key, out);
            }
            _ if data => q.q.push_data(out),
            _ => q.q.push(out),
        }
        drop(q);
        self.0.wake.notify_one();
        Ok(())
    }

    /// The session may be resumed: frames are kept until the client acknowledges them, and a
    /// failed write detaches the session rather than ending it.
    pub fn set_resumable(&self) {
        let mut q = self.0.q.lock();
        q.resumable = true;
        q.q.keep_tail(true);
    }

    /// A detached outbox whose session arrives from another node (docs/DESIGN.md, "Drain"):
    /// pushes are held until [`Outbox::adopt`] puts the session's own frames before them.
    pub fn for_move() -> Outbox {
        let outbox = Outbox::default();
        outbox.set_resumable();
        outbox.0.q.lock().state = State::Detached;
        outbox
    }

    /// The detached session moves to another node: everything it holds for its client (see
    /// [`OutQueue::take_all`]) and the last frame handled from it. Nothing is written from
    /// here on; the outbox is left closed.
    pub fn take_for_move(&self) -> Moving {
        let mut q = self.0.q.lock();
        let (next, kept, queued) = q.q.take_all();
        self.set_state(&mut q, State::Closing { code: None });
        Moving {
            next,
            kept,
            queued,
            handled: self.handled(),
        }
    }

    /// The session that moved here ([`Outbox::take_for_move`] on its old node) is this
    /// outbox's: its frames first, then what was pushed here meanwhile.
    pub fn adopt(&self, moving: Moving) {
        let mut q = self.0.q.lock();
        q.q.adopt(moving.next, moving.kept, moving.queued);
        drop(q);
        self.set_handled(moving.handled);
    }

    /// The client has handled every frame up to `upto`. `Err` if it acknowledges a frame
    /// never sent (a broken or lying peer).
    pub fn acked(&self, upto: u64) -> Result<(), Unsent> {
        let mut q = self.0.q.lock();
        q.q.acked(upto)?;
        let freed = q.q.take_spare();
        drop(q);
        if !freed.is_empty() {
            give_back(freed);
        }
        Ok(())
    }

    /// The last numbered frame handled from the client.
    pub fn handled(&self) -> u64 {
        self.0.ack.load(Ordering::Acquire)
    }

    /// Frame `seq` from the client is handled; frames written from now on acknowledge it.
    pub fn set_handled(&self, seq: u64) {
        self.0.ack.store(seq, Ordering::Release);
    }

    /// Waits until the writer has taken every control frame queued (a session about to be
    /// taken off its connection first sends its client what it has: a session just logged in,
    /// its `resumable`), the outbox is no longer open, or `patience` passes.
    pub async fn control_flushed(&self, patience: Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let woken = self.0.stopped.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            {
                let mut q = self.0.q.lock();
                if q.state != State::Open || q.q.control_bytes() == 0 {
                    return;
                }
                q.flush_wanted = true;
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                return;
            }
        }
    }

    /// Takes the session off its connection (its link dropped, or a resume takes it over):
    /// the writer stops, pushes are held. False unless it was open.
    pub fn detach(&self) -> bool {
        let mut q = self.0.q.lock();
        if q.state != State::Open {
            return false;
        }
        self.set_state(&mut q, State::Detached);
        true
    }

    /// Puts a detached session on a new connection: `resumed` goes first, then every frame
    /// the client has not handled (after `client_last`), then what was held. `Err` if the
    /// client claims frames never sent; the session stays detached.
    pub fn attach(&self, client_last: u64, resumed: &ServerMsg) -> Result<(), Unsent> {
        let mut q = self.0.q.lock();
        if q.state != State::Detached {
            return Err(Unsent);
        }
        q.q.new_connection();
        q.q.resume(client_last)?;
        q.q.push_handshake(Out::msg(resumed));
        q.state = State::Open;
        drop(q);
        self.0.wake.notify_one();
        Ok(())
    }

    /// Queues an unnumbered frame of the connection's handshake (`welcome`, a refused resume):
    /// written before anything else.
    pub fn push_handshake(&self, msg: &ServerMsg) {
        let mut q = self.0.q.lock();
        if q.state.accepts() {
            q.q.push_handshake(Out::msg(msg));
            drop(q);
            self.0.wake.notify_one();
        }
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
        if !q.state.accepts() {
            return false;
        }
        q.q.push(out);
        self.set_state(&mut q, State::Closing { code });
        true
    }

    /// Starts closing without a final message: what is queued is still sent (if there is a
    /// connection to send it on).
    pub fn close(&self) {
        let mut q = self.0.q.lock();
        if q.state.accepts() {
            self.set_state(&mut q, State::Closing { code: None });
        }
    }

    /// Marks the socket as unwritable: a resumable session is detached (everything kept),
    /// otherwise queued frames are dropped.
    pub fn broken(&self) {
        let mut q = self.0.q.lock();
        if q.state == State::Open && q.resumable {
            self.set_state(&mut q, State::Detached);
        } else if matches!(q.state, State::Open | State::Closing { .. }) {
            q.q.clear();
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

    /// Whether the outbox is open on a connection.
    pub fn is_open(&self) -> bool {
        self.state() == State::Open
    }

    /// Whether pushes are still accepted: open, or a detached session held for its resume.
    pub fn accepts(&self) -> bool {
        self.state().accepts()
    }

    /// Bytes queued and not yet taken by the writer.
    pub fn queued_bytes(&self) -> usize {
        let q = self.0.q.lock();
        q.q.control_bytes() + q.q.data_bytes()
    }

    /// Resolves once the outbox is no longer [`State::Open`].
    pub async fn stopped(&self) {
        self.until(|s| s != State::Open).await
    }

    /// Resolves once the session is over: neither open nor detached (closed, kicked,
    /// overflowed).
    pub async fn ended(&self) {
        self.until(|s| !s.accepts()).await
    }

    async fn until(&self, done: impl Fn(State) -> bool) {
        loop {
            let notified = self.0.stopped.notified();
            tokio::pin!(notified);
            // Registered before the state is read, so a change right after is not missed.
            notified.as_mut().enable();
            if done(self.state()) {
                return;
            }
            notified.await;
        }
    }

    /// Encodes the next frames into `batch` (stamped with their sequence numbers and `ack`):
    /// every queued control frame (up to a batch), or else one data chunk; large payloads stay
    /// where they are, for a vectored write. Waits while there is nothing to send; with
    /// `ping`, queues a ping after `ping` of silence. Only one task (the writer) may call this.
    pub async fn next_batch(&self, batch: &mut Batch, ping: Option<Duration>) -> Flow {
        loop {
            {
                let mut q = self.0.q.lock();
                if matches!(q.state, State::Overflow | State::Broken | State::Detached) {
                    return Flow::Stop;
                }
                if q.q.encode_batch(self.handled(), batch, BATCH_BYTES) > 0 {
                    if q.flush_wanted && q.q.control_bytes() == 0 {
                        q.flush_wanted = false;
                        self.0.stopped.notify_waiters();
                    }
                    return Flow::Ready;
                }
                if matches!(q.state, State::Closing { .. }) {
                    return Flow::Drained;
                }
            }
            match ping {
                None => self.0.wake.notified().await,
                Some(after) => {
                    if tokio::time::timeout(after, self.0.wake.notified())
                        .await
                        .is_err()
                    {
                        let mut q = self.0.q.lock();
                        if q.state == State::Open {
                            q.q.push(Out::Ping);
                        }
                    }
                }
            }
        }
    }
}

/// How long a closing connection's writer may take to flush before it is cut off.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The task of [`run_writer`] on a split stream `S`: it gives the write half back.
pub type Writer<S> = tokio::task::JoinHandle<Option<tokio::io::WriteHalf<S>>>;

/// The writer task of a connection: writes whatever the outbox encodes (each frame's `ack` is
/// the latest sequence number the reader handled), pings after `heartbeat` of silence once the
/// connection has said anything. When the outbox drains it returns the write half (for the
/// caller to shut down, or to hand to the session a resume takes over); `None` when it stopped
/// or the socket failed.
pub async fn run_writer<W: AsyncWrite + Unpin>(
    mut wr: W,
    outbox: Outbox,
    heartbeat: Duration,
) -> Option<W> {
    let mut batch = Batch::new();
    let mut sent_any = false;
    loop {
        // Give a burst's memory back rather than keep it per connection: at once when it is
        // large, otherwise at the first small write after it.
        let keep = if batch.len() <= KEEP_IDLE / 4 {
            KEEP_IDLE
        } else {
            KEEP_BYTES
        };
        batch.clear(keep);
        // No pings before the handshake's answer: the first frame is Welcome or Close.
        let ping = sent_any.then_some(heartbeat);
        match outbox.next_batch(&mut batch, ping).await {
            Flow::Ready => {}
            Flow::Drained => return Some(wr),
            Flow::Stop => return None,
        }
        if write_batch(&mut wr, &batch).await.is_err() {
            outbox.broken();
            return None;
        }
        sent_any = true;
    }
}

/// Writes a whole batch, with as few system calls as the socket allows.
async fn write_batch(wr: &mut (impl AsyncWrite + Unpin), batch: &Batch) -> std::io::Result<()> {
    let mut done = 0;
    while done < batch.len() {
        let n = wr.write_vectored(&batch.slices(done)).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        done += n;
    }
    Ok(())
}

/// Test helpers: what an outbox would put on the wire, decoded.
#[cfg(test)]
impl Outbox {
    /// Every frame queued now, in wire order, as (kind, payload).
    pub fn take_frames(&self) -> Vec<crvm_proto::Frame> {
        let mut wire = Vec::new();
        {
            let mut q = self.0.q.lock();
            while q.q.encode(self.handled(), &mut wire, usize::MAX) > 0 {}
        }
        // Parsed header by header: earlier writes may have used the first sequence numbers.
        let mut frames = Vec::new();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            let h = crvm_proto::frame::parse_header(
                rest[..crvm_proto::frame::HEADER_LEN].try_into().unwrap(),
                u32::MAX,
            )
            .unwrap();
            let end = crvm_proto::frame::HEADER_LEN + h.len as usize;
            frames.push(crvm_proto::Frame {
                kind: h.kind,
                seq: h.seq,
                ack: h.ack,
                payload: rest[crvm_proto::frame::HEADER_LEN..end].to_vec(),
            });
            rest = &rest[end..];
        }
        frames
    }

    /// Every control message queued now, in order.
    pub fn take_msgs(&self) -> Vec<ServerMsg> {
        self.take_frames()
            .iter()
            .filter(|f| f.kind == crvm_proto::Kind::Control)
            .map(|f| serde_json::from_slice(f.control().unwrap().0).unwrap())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crvm_proto::frame::HEADER_LEN;
    use crvm_proto::Kind;

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
        let mut b = Batch::new();
        assert_eq!(ob.next_batch(&mut b, None).await, Flow::Ready);
        assert_eq!(
            b.len(),
            json(3).cost() + Out::Pong.cost(),
            "control frames only"
        );
        b.clear(0);
        assert_eq!(ob.next_batch(&mut b, None).await, Flow::Ready);
        assert_eq!(b.len(), HEADER_LEN + 16, "then one chunk");
        ob.push(json(1)).unwrap();
        let kinds: Vec<Kind> = ob.take_frames().iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [Kind::Control, Kind::Data]);
        assert_eq!(ob.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn overflow_closes_instead_of_growing() {
        let ob = Outbox::new(1000, 1000);
        // A single oversized frame fits an empty queue.
        ob.push(json(5000)).unwrap();
        let mut b = Batch::new();
        assert_eq!(ob.next_batch(&mut b, None).await, Flow::Ready);
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
        assert_eq!(ob.next_batch(&mut b, None).await, Flow::Stop);
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
        let frames = ob.take_frames();
        assert_eq!(frames.len(), 2);
        assert_eq!(
            serde_json::from_slice::<ServerMsg>(frames[1].control().unwrap().0).unwrap(),
            close
        );
        let mut b = Batch::new();
        assert_eq!(ob.next_batch(&mut b, None).await, Flow::Drained);
    }

    #[tokio::test]
    async fn writer_wakes_on_push_and_pings_when_silent() {
        let ob = Outbox::default();
        let waiter = {
            let ob = ob.clone();
            tokio::spawn(async move {
                let mut b = Batch::new();
                let flow = ob.next_batch(&mut b, None).await;
                (flow, b.len())
            })
        };
        tokio::task::yield_now().await;
        ob.push(Out::Pong).unwrap();
        assert_eq!(waiter.await.unwrap(), (Flow::Ready, Out::Pong.cost()));
        let mut b = Batch::new();
        let silence = Some(Duration::from_millis(1));
        assert_eq!(ob.next_batch(&mut b, silence).await, Flow::Ready);
        let wire: Vec<u8> = b.slices(0).iter().flat_map(|s| s.to_vec()).collect();
        assert_eq!((wire.len(), wire[4]), (Out::Ping.cost(), Kind::Ping as u8));
    }
}
