//! The out-queue of one connection, used by both ends: frames wait here without a header and
//! get their sequence number when they are encoded for the wire, so that numbers follow the
//! order on the wire even though control frames overtake data.
//!
//! Two priorities: control frames (messages, heartbeats) and data chunks. [`OutQueue::encode`]
//! takes every queued control frame before at most one data chunk, so signalling never waits
//! behind more than one chunk. The queue itself is unbounded; the owner decides what a bound is
//! and what happens past it (the server closes a connection whose queue overflows; the
//! library's own flow control keeps its queue small).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::frame::{control_prefix, header_at, Encoder, Kind, HEADER_LEN};
use crate::hot::Json;

/// Unsent bytes either end lets the kernel hold per socket (`TCP_NOTSENT_LOWAT`): past this, a
/// write takes no more and the socket polls as not writable, so data waits here, where control
/// frames overtake it, rather than in the kernel's send buffer ahead of them. 32 KiB is a third
/// of a millisecond at 1 Gbit/s and 26 ms at 10 Mbit/s; enough that a fast link never starves
/// (the kernel refills it from this much while the writer is woken).
pub const KERNEL_UNSENT: usize = 32 * 1024;

/// Most bytes the kernel may hold unsent on a fast path (see [`unsent_for_rate`]).
pub const KERNEL_UNSENT_MAX: usize = 512 * 1024;

/// How long the kernel's unsent bytes should last at the path's delivery rate: long enough that
/// the writer, woken late on a busy machine, still finds the socket busy; short enough that a
/// control frame written after them waits no longer than this.
pub const UNSENT_TIME_US: u64 = 2000;

/// The bound on unsent bytes for a path that delivers `rate` bytes per second:
/// [`UNSENT_TIME_US`] of it, between [`KERNEL_UNSENT`] and [`KERNEL_UNSENT_MAX`], in steps of
/// [`KERNEL_UNSENT`] (so that a socket's bound changes only when the rate does by that much).
pub fn unsent_for_rate(rate: f64) -> usize {
    let bytes = (rate * UNSENT_TIME_US as f64 / 1e6) as usize;
    (bytes / KERNEL_UNSENT * KERNEL_UNSENT).clamp(KERNEL_UNSENT, KERNEL_UNSENT_MAX)
}

/// Bounds the bytes the kernel holds unsent on the TCP socket `fd` to [`KERNEL_UNSENT`]
/// (`TCP_NOTSENT_LOWAT`), for the library's and the server's sockets alike. Best effort:
/// without it (another OS) only latency under load suffers.
pub fn limit_unsent(fd: std::os::fd::RawFd) {
    limit_unsent_to(fd, KERNEL_UNSENT);
}

/// Bounds the bytes the kernel holds unsent on the TCP socket `fd` to `bytes`
/// (`TCP_NOTSENT_LOWAT`; best effort).
pub fn limit_unsent_to(fd: std::os::fd::RawFd, bytes: usize) {
    let lowat = bytes.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: setsockopt on a descriptor the caller owns, with a live c_int of the stated size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            &lowat as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// A large payload (a chunk, a cmd's bytes), shared between the write in progress and the
/// unacknowledged tail without being copied.
pub type Payload = Arc<Vec<u8>>;

/// One outgoing frame, before its header is stamped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// A control message's JSON (shared, so a fan-out serialises once).
    Control(Arc<[u8]>),
    /// A control message's JSON with a binary attachment (a cmd's bytes).
    Attached(Arc<[u8]>, Payload),
    /// A data frame payload: 8-byte stream ID, then the chunk.
    Data(Payload),
    Ping,
    Pong,
    /// A standalone acknowledgement.
    Ack,
}

impl Out {
    /// A control frame carrying `msg`.
    pub fn msg<T: Json>(msg: &T) -> Out {
        Out::Control(shared_json(|j| msg.write_json(j)))
    }

    /// A control frame carrying `msg` and `attachment`.
    pub fn attached<T: Json>(msg: &T, attachment: Vec<u8>) -> Out {
        Out::Attached(shared_json(|j| msg.write_json(j)), Arc::new(attachment))
    }

    /// A data frame of stream `sid`.
    pub fn data(sid: u64, bytes: &[u8]) -> Out {
        let mut p = Vec::with_capacity(8 + bytes.len());
        p.extend_from_slice(&sid.to_be_bytes());
        p.extend_from_slice(bytes);
        Out::Data(Arc::new(p))
    }

    pub fn kind(&self) -> Kind {
        match self {
            Out::Control(_) | Out::Attached(..) => Kind::Control,
            Out::Data(_) => Kind::Data,
            Out::Ping => Kind::Ping,
            Out::Pong => Kind::Pong,
            Out::Ack => Kind::Ack,
        }
    }

    /// Payload length in bytes.
    pub fn payload_len(&self) -> usize {
        match self {
            Out::Control(json) => 4 + json.len(),
            Out::Attached(json, att) => 4 + json.len() + att.len(),
            Out::Data(p) => p.len(),
            Out::Ping | Out::Pong | Out::Ack => 0,
        }
    }

    /// Bytes this frame takes on the wire; what bounds count.
    pub fn cost(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// Appends this frame to `out` with the given header.
    fn encode_with(&self, header: [u8; HEADER_LEN], out: &mut Vec<u8>) {
        out.extend_from_slice(&header);
        match self {
            Out::Control(json) => {
                out.extend_from_slice(&control_prefix(json));
                out.extend_from_slice(json);
            }
            Out::Attached(json, att) => {
                out.extend_from_slice(&control_prefix(json));
                out.extend_from_slice(json);
                out.extend_from_slice(att);
            }
            Out::Data(p) => out.extend_from_slice(p),
            Out::Ping | Out::Pong | Out::Ack => {}
        }
    }

    /// Appends this frame to `out`, header first, taking the next sequence number of `enc`
    /// (unless it is of an unnumbered kind).
    pub fn encode(&self, enc: &mut Encoder, ack: u64, out: &mut Vec<u8>) {
        self.encode_with(enc.header(self.kind(), ack, self.payload_len()), out);
    }
}

/// The JSON `write` writes, in a shared buffer of its exact size, written through a scratch
/// buffer each thread reuses: one allocation per message (a `Vec` turned into an `Arc<[u8]>`
/// was up to three, a tenth of what a small cmd cost its sender).
fn shared_json(write: impl FnOnce(&mut Vec<u8>)) -> Arc<[u8]> {
    thread_local! {
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        scratch.clear();
        write(&mut scratch);
        let json = Arc::from(&scratch[..]);
        // A message far larger than usual (a long meeting list) does not stay allocated.
        if scratch.capacity() > 64 * 1024 {
            *scratch = Vec::new();
        }
        json
    })
}

/// Where a frame taken from the queue comes from, which decides its number.
#[derive(Clone, Copy)]
enum Stamp {
    /// A connection's handshake: unnumbered.
    Handshake,
    /// Sent again after a resume, with its original number.
    Resent(u64),
    /// The next number (if its kind is numbered).
    Next,
}

/// The acknowledgement names a frame that was never sent, or a resume asks for frames that
/// are no longer kept: the peer is broken or lying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsent;

/// Queued frames of one connection (or, for a resumable session, of the session across its
/// connections), its outgoing sequence numbers, and — with [`OutQueue::keep_tail`] — the
/// numbered frames sent and not yet acknowledged, for sending again after a resume.
#[derive(Debug, Default)]
pub struct OutQueue {
    handshake: VecDeque<Out>,
    resend: VecDeque<(u64, Out)>,
    control: VecDeque<Out>,
    data: VecDeque<Out>,
    control_bytes: usize,
    data_bytes: usize,
    enc: Encoder,
    keep: bool,
    /// Numbered frames written and not acknowledged, in order (with `keep`).
    tail: VecDeque<(u64, Out)>,
    /// Wire bytes of `tail` and `resend`, and of the control frames among them.
    tail_bytes: usize,
    tail_control_bytes: usize,
    /// Only the handshake goes out (a resume is being negotiated).
    hold: bool,
    /// Frames merged by key ([`OutQueue::push_merged`]): key → absolute index in `control`.
    merged: HashMap<Box<str>, u64>,
    /// Control frames taken from the front of `control` so far (absolute index base).
    popped: u64,
    /// Whether acknowledged data payloads are kept for reuse ([`OutQueue::recycle_data`]).
    recycle: bool,
    /// Acknowledged data payloads, emptied, for [`OutQueue::spare_payload`].
    spare: Vec<Vec<u8>>,
}

/// Most acknowledged payloads kept for reuse: a window's worth of 128 KiB chunks (4 MiB).
const MAX_SPARE: usize = 32;

impl OutQueue {
    pub fn new() -> OutQueue {
        OutQueue::default()
    }

    /// Keeps every numbered frame written until the peer acknowledges it (a resumable
    /// session).
    pub fn keep_tail(&mut self, keep: bool) {
        self.keep = keep;
        if !keep {
            for (_, out) in std::mem::take(&mut self.tail) {
                self.kept(&out, false);
            }
        }
    }

    /// Queues a control-priority frame (messages, pings, pongs).
    pub fn push(&mut self, out: Out) {
        self.control_bytes += out.cost();
        self.control.push_back(out);
    }

    /// Queues a control frame that replaces a queued, not yet written one pushed with the same
    /// `key` (in its place); otherwise like [`OutQueue::push`]. Returns whether it replaced
    /// one. (While a session is detached, one user's presence pushes merge into the latest.)
    pub fn push_merged(&mut self, key: &str, out: Out) -> bool {
        if let Some(&at) = self.merged.get(key) {
            if at >= self.popped {
                let slot = &mut self.control[(at - self.popped) as usize];
                self.control_bytes = self.control_bytes - slot.cost() + out.cost();
                *slot = out;
                return true;
            }
        }
        let at = self.popped + self.control.len() as u64;
        self.merged.insert(key.into(), at);
        self.push(out);
        false
    }

    /// Queues an unnumbered control frame of the connection's handshake (`hello`, `welcome`,
    /// `resume`, `resumed`): written before anything else.
    pub fn push_handshake(&mut self, out: Out) {
        self.handshake.push_back(out);
    }

    /// Queues a data chunk (lower priority than every control frame).
    pub fn push_data(&mut self, out: Out) {
        self.data_bytes += out.cost();
        self.data.push_back(out);
    }

    /// Wire bytes of the queued control frames.
    pub fn control_bytes(&self) -> usize {
        self.control_bytes
    }

    /// Wire bytes of the queued data chunks.
    pub fn data_bytes(&self) -> usize {
        self.data_bytes
    }

    /// Wire bytes of frames sent and not acknowledged (kept for a resume).
    pub fn tail_bytes(&self) -> usize {
        self.tail_bytes
    }

    /// Wire bytes of the control frames among them.
    pub fn tail_control_bytes(&self) -> usize {
        self.tail_control_bytes
    }

    fn kept(&mut self, out: &Out, add: bool) {
        let (cost, control) = (out.cost(), out.kind() == Kind::Control);
        if add {
            self.tail_bytes += cost;
            self.tail_control_bytes += if control { cost } else { 0 };
        } else {
            self.tail_bytes -= cost;
            self.tail_control_bytes -= if control { cost } else { 0 };
        }
    }

    /// Data chunks queued.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handshake.is_empty()
            && (self.hold || (self.resend.is_empty() && self.control.is_empty()))
            && self.data.is_empty()
    }

    /// Drops everything queued and kept (the session is gone).
    pub fn clear(&mut self) {
        self.handshake.clear();
        self.resend.clear();
        self.control.clear();
        self.data.clear();
        self.tail.clear();
        self.merged.clear();
        self.popped = 0;
        self.control_bytes = 0;
        self.data_bytes = 0;
        self.tail_bytes = 0;
        self.tail_control_bytes = 0;
        self.hold = false;
    }

    /// Sequence number the next frame will carry.
    pub fn next_seq(&self) -> u64 {
        self.enc.next_seq()
    }

    /// The peer has handled every frame up to `upto`: they are no longer kept.
    pub fn acked(&mut self, upto: u64) -> Result<(), Unsent> {
        if upto >= self.enc.next_seq() {
            return Err(Unsent);
        }
        // The tail (written on this connection) comes before what still waits to be sent
        // again (written on an earlier one).
        for resend in [false, true] {
            loop {
                let q = if resend {
                    &mut self.resend
                } else {
                    &mut self.tail
                };
                if q.front().is_none_or(|(seq, _)| *seq > upto) {
                    break;
                }
                let (_, out) = q.pop_front().expect("front exists");
                self.kept(&out, false);
                if let Out::Data(p) = out {
                    self.reuse(p);
                }
            }
        }
        Ok(())
    }

    /// While `on`, each acknowledged data payload that nothing else holds is kept (up to
    /// [`MAX_SPARE`]) for [`OutQueue::spare_payload`], so that a sender's chunks are written
    /// into warm memory instead of fresh pages from the allocator; off, the kept ones are
    /// freed. (A sending library turns it on while it produces chunks and off when it has none
    /// left; a server keeps it on and takes them with [`OutQueue::take_spare`].)
    pub fn recycle_data(&mut self, on: bool) {
        self.recycle = on;
        if !on {
            self.spare = Vec::new();
        }
    }

    /// An empty buffer for a data payload: an acknowledged one's, or a new one of `cap` bytes.
    pub fn spare_payload(&mut self, cap: usize) -> Vec<u8> {
        let mut v = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(cap));
        v.clear();
        v
    }

    /// Every acknowledged payload kept so far, as it was (a server passes them to the
    /// decoders that read the next chunks).
    pub fn take_spare(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.spare)
    }

    fn reuse(&mut self, p: Payload) {
        if !self.recycle || self.spare.len() >= MAX_SPARE {
            return;
        }
        if let Ok(v) = Arc::try_unwrap(p) {
            self.spare.push(v);
        }
    }

    /// A new connection for the session: what the last one had left of its handshake is
    /// dropped, and until [`OutQueue::resume`] (or [`OutQueue::release`]) only handshake frames
    /// go out.
    pub fn new_connection(&mut self) {
        self.handshake.clear();
        self.hold = true;
    }

    /// Lets everything queued go out (a fresh session's first connection).
    pub fn release(&mut self) {
        self.hold = false;
    }

    /// The session is resumed and the peer has handled every frame up to `peer_last`: those
    /// are dropped, the rest of the tail is sent again first, with its numbers, then whatever
    /// is queued.
    pub fn resume(&mut self, peer_last: u64) -> Result<(), Unsent> {
        self.acked(peer_last)?;
        // Everything after `peer_last` must still be here.
        let first = self
            .tail
            .front()
            .or(self.resend.front())
            .map_or(self.enc.next_seq(), |(seq, _)| *seq);
        if first != peer_last + 1 {
            return Err(Unsent);
        }
        while let Some(f) = self.tail.pop_back() {
            self.resend.push_front(f);
        }
        self.hold = false;
        Ok(())
    }

    /// The session moves to another server: hands over the number the next frame would carry,
    /// the numbered frames not acknowledged (in order, to be sent again there) and the control
    /// frames still queued (in order). Queued data chunks are dropped (a moving session's
    /// streams end). The queue is left empty.
    pub fn take_all(&mut self) -> (u64, Vec<(u64, Out)>, Vec<Out>) {
        let next = self.enc.next_seq();
        let mut kept: Vec<(u64, Out)> = self.tail.drain(..).collect();
        kept.extend(self.resend.drain(..));
        kept.sort_by_key(|(seq, _)| *seq);
        let queued: Vec<Out> = self.control.drain(..).collect();
        self.clear();
        (next, kept, queued)
    }

    /// Takes over a session moved from another server ([`OutQueue::take_all`] there): its
    /// unacknowledged frames are kept for the resume, its queued frames go before whatever was
    /// queued here meanwhile, and numbering continues at `next`.
    pub fn adopt(&mut self, next: u64, kept: Vec<(u64, Out)>, queued: Vec<Out>) {
        for (seq, out) in kept {
            self.kept(&out, true);
            self.tail.push_back((seq, out));
        }
        for out in queued.into_iter().rev() {
            self.control_bytes += out.cost();
            self.control.push_front(out);
        }
        self.merged.clear();
        self.enc.continue_after(next.saturating_sub(1));
    }

    /// Drops everything queued and kept, and numbers the next frame `last + 1`: a session
    /// resumed only to be logged out sends nothing of what it had.
    pub fn restart_after(&mut self, last: u64) {
        self.clear();
        self.enc.continue_after(last);
    }

    /// The next frame to write: the handshake, then (unless held) what is to be sent again,
    /// then control frames, then — only if `data` — one data chunk.
    fn pop(&mut self, data: bool) -> Option<(Stamp, Out)> {
        if let Some(out) = self.handshake.pop_front() {
            return Some((Stamp::Handshake, out));
        }
        if self.hold {
            return None;
        }
        if let Some((seq, out)) = self.resend.pop_front() {
            self.kept(&out, false);
            return Some((Stamp::Resent(seq), out));
        }
        if let Some(out) = self.control.pop_front() {
            self.popped += 1;
            if self.control.is_empty() {
                self.merged.clear();
            }
            self.control_bytes -= out.cost();
            return Some((Stamp::Next, out));
        }
        if data {
            if let Some(out) = self.data.pop_front() {
                self.data_bytes -= out.cost();
                return Some((Stamp::Next, out));
            }
        }
        None
    }

    /// The header of `out` taken with `stamp`; a numbered frame is kept in the tail.
    fn stamp(&mut self, stamp: Stamp, out: &Out, ack: u64) -> [u8; HEADER_LEN] {
        let (kind, len) = (out.kind(), out.payload_len());
        let seq = match stamp {
            Stamp::Handshake => 0,
            Stamp::Resent(seq) => seq,
            Stamp::Next if kind.numbered() => {
                let seq = self.enc.next_seq();
                self.enc.continue_after(seq);
                seq
            }
            Stamp::Next => 0,
        };
        if seq != 0 && self.keep {
            self.kept(out, true);
            self.tail.push_back((seq, out.clone()));
        }
        header_at(kind, seq, ack, len)
    }

    /// Appends queued frames to `buf`, stamped with their sequence numbers and `ack`: control
    /// frames until `buf` holds `max` bytes, or — only if there was no control frame — one data
    /// chunk. Returns how many frames it wrote.
    pub fn encode(&mut self, ack: u64, buf: &mut Vec<u8>, max: usize) -> usize {
        let mut n = 0;
        while buf.len() < max || n == 0 {
            let Some((stamp, out)) = self.pop(n == 0) else {
                break;
            };
            let header = self.stamp(stamp, &out, ack);
            out.encode_with(header, buf);
            n += 1;
            if out.kind() == Kind::Data {
                break;
            }
        }
        n
    }

    /// Like [`OutQueue::encode`] into `batch`, except that large payloads — a data chunk, a
    /// cmd's bytes — are not copied: the batch keeps them and they are written in place
    /// (vectored I/O), so the relay forwards them without copying them again.
    pub fn encode_batch(&mut self, ack: u64, batch: &mut Batch, max: usize) -> usize {
        let mut n = 0;
        while batch.len < max || n == 0 {
            let Some((stamp, out)) = self.pop(n == 0) else {
                break;
            };
            let header = self.stamp(stamp, &out, ack);
            let data = out.kind() == Kind::Data;
            batch.push(header, out);
            n += 1;
            if data {
                break;
            }
        }
        n
    }

    /// The header of a frame of `len` payload bytes that the caller writes itself (a data
    /// chunk read straight from a file into the write buffer), with the next sequence number.
    /// With [`OutQueue::keep_tail`], the caller hands the frame to [`OutQueue::keep_sent`].
    pub fn header(&mut self, kind: Kind, ack: u64, len: usize) -> [u8; HEADER_LEN] {
        self.enc.header(kind, ack, len)
    }

    /// Whether written frames are kept until acknowledged.
    pub fn keeps_tail(&self) -> bool {
        self.keep
    }

    /// Keeps frame `seq`, written by the caller with [`OutQueue::header`], until acknowledged.
    pub fn keep_sent(&mut self, seq: u64, out: Out) {
        if self.keep {
            self.kept(&out, true);
            self.tail.push_back((seq, out));
        }
    }
}

/// Encoded frames ready for one vectored write: small parts (headers, JSON, small payloads)
/// copied into `bytes`, large payloads kept as they are, in wire order.
#[derive(Debug, Default)]
pub struct Batch {
    bytes: Vec<u8>,
    /// The write in order: `Ok(end)` is `bytes[previous end..end]`, `Err(i)` is `owned[i]`.
    spans: Vec<Result<usize, usize>>,
    owned: Vec<Payload>,
    /// Wire bytes in the batch.
    len: usize,
}

/// Payloads at least this large are written in place rather than copied.
const IN_PLACE: usize = 2048;
/// A batch takes at most this many payloads in place (a writev takes at most 1024 parts).
const MAX_OWNED: usize = 256;

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Wire bytes in the batch.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Empties the batch, keeping its memory for the next one (unless it grew past `keep`).
    pub fn clear(&mut self, keep: usize) {
        if self.bytes.capacity() > keep {
            self.bytes = Vec::new();
        }
        self.bytes.clear();
        self.spans.clear();
        self.owned.clear();
        self.len = 0;
    }

    /// Empties the batch like [`Batch::clear`], giving its in-place payloads that nothing else
    /// holds back to `q` for the next chunks ([`OutQueue::spare_payload`]).
    pub fn clear_into(&mut self, keep: usize, q: &mut OutQueue) {
        for p in self.owned.drain(..) {
            q.reuse(p);
        }
        self.clear(keep);
    }

    /// Appends a frame whose header the caller stamped ([`OutQueue::header`]).
    pub fn push(&mut self, header: [u8; HEADER_LEN], out: Out) {
        self.len += out.cost();
        let payload = match out {
            Out::Attached(json, att) if att.len() >= IN_PLACE && self.owned.len() < MAX_OWNED => {
                self.bytes.extend_from_slice(&header);
                self.bytes.extend_from_slice(&control_prefix(&json));
                self.bytes.extend_from_slice(&json);
                att
            }
            Out::Data(p) if p.len() >= IN_PLACE && self.owned.len() < MAX_OWNED => {
                self.bytes.extend_from_slice(&header);
                p
            }
            small => return small.encode_with(header, &mut self.bytes),
        };
        self.spans.push(Ok(self.bytes.len()));
        self.spans.push(Err(self.owned.len()));
        self.owned.push(payload);
    }

    /// The parts of the batch from wire offset `from` on, for a vectored write.
    pub fn slices(&self, from: usize) -> Vec<std::io::IoSlice<'_>> {
        let mut parts: Vec<&[u8]> = Vec::with_capacity(self.spans.len() + 1);
        let mut start = 0;
        for span in &self.spans {
            match *span {
                Ok(end) => {
                    parts.push(&self.bytes[start..end]);
                    start = end;
                }
                Err(i) => parts.push(&self.owned[i][..]),
            }
        }
        parts.push(&self.bytes[start..]);
        let mut at = 0;
        let mut out = Vec::with_capacity(parts.len());
        for part in parts {
            let end = at + part.len();
            if end > from && !part.is_empty() {
                out.push(std::io::IoSlice::new(&part[from.saturating_sub(at)..]));
            }
            at = end;
        }
        out
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn frames_hold_exactly_the_json_of_their_message_whatever_its_size() {
        use crate::ClientMsg;
        // Small, then larger than the scratch buffer keeps, then small again after it.
        for to in [
            "bob".to_string(),
            "x".repeat(100 * 1024),
            "a\"b".to_string(),
        ] {
            let msg = ClientMsg::Cmd { n: 7, to };
            assert_eq!(Out::msg(&msg), Out::Control(msg.json().into()));
            let Out::Attached(json, att) = Out::attached(&msg, vec![1, 2]) else {
                panic!("an attached frame");
            };
            assert_eq!((&json[..], &att[..]), (&msg.json()[..], &[1u8, 2][..]));
        }
    }

    #[test]
    fn the_unsent_bound_is_two_milliseconds_of_the_rate_in_steps_within_its_limits() {
        assert_eq!(unsent_for_rate(0.0), KERNEL_UNSENT, "no stream: the least");
        assert_eq!(
            unsent_for_rate(1.25e6),
            KERNEL_UNSENT,
            "10 Mbit/s: the least"
        );
        assert_eq!(
            unsent_for_rate(125e6),
            7 * KERNEL_UNSENT,
            "1 Gbit/s: 250 kB, in steps"
        );
        assert_eq!(
            unsent_for_rate(2e9),
            KERNEL_UNSENT_MAX,
            "loopback: the most"
        );
    }
    use super::*;
    use crate::frame::Decoder;

    fn json(n: usize) -> Out {
        Out::Control(vec![b'x'; n].into())
    }

    fn frames(wire: &[u8]) -> Vec<(Kind, u64, Vec<u8>)> {
        frames_after(0, wire)
    }

    fn frames_after(last: u64, wire: &[u8]) -> Vec<(Kind, u64, Vec<u8>)> {
        let mut dec = Decoder::new(1 << 20);
        dec.continue_after(last);
        dec.feed(wire);
        let mut out = Vec::new();
        while let Some(f) = dec.next_frame().unwrap() {
            out.push((f.kind, f.seq, f.payload));
        }
        out
    }

    #[test]
    fn control_first_one_chunk_at_a_time_numbered_in_wire_order() {
        let mut q = OutQueue::new();
        q.push_data(Out::data(1, &[0; 16]));
        q.push_data(Out::data(1, &[1; 16]));
        q.push(json(3));
        q.push(Out::Pong);
        let mut wire = Vec::new();
        assert_eq!(q.encode(7, &mut wire, 1 << 20), 2);
        assert_eq!(q.encode(7, &mut wire, 1 << 20), 1, "then one chunk");
        q.push(json(1));
        assert_eq!(
            q.encode(7, &mut wire, 1 << 20),
            1,
            "a new control frame goes first"
        );
        assert_eq!(q.encode(7, &mut wire, 1 << 20), 1);
        assert_eq!(q.encode(7, &mut wire, 1 << 20), 0);
        assert!(q.is_empty());
        assert_eq!((q.control_bytes(), q.data_bytes()), (0, 0));
        let got = frames(&wire);
        let kinds: Vec<Kind> = got.iter().map(|f| f.0).collect();
        assert_eq!(
            kinds,
            [
                Kind::Control,
                Kind::Pong,
                Kind::Data,
                Kind::Control,
                Kind::Data
            ]
        );
        // The pong is unnumbered.
        assert_eq!(got.iter().map(|f| f.1).collect::<Vec<_>>(), [1, 0, 2, 3, 4]);
        assert_eq!(got[2].2[8..], [0; 16]);
        assert_eq!(got[4].2[8..], [1; 16]);
    }

    #[test]
    fn batches_keep_large_payloads_in_place_and_write_the_same_bytes() {
        let mut q = OutQueue::new();
        q.push_data(Out::data(3, &[9; 5000]));
        q.push(json(2));
        q.push(Out::Attached(
            vec![b'j'; 10].into(),
            Arc::new(vec![7; 4096]),
        ));
        q.push(Out::Attached(vec![b'k'; 10].into(), Arc::new(vec![8; 10])));
        let mut b = Batch::new();
        assert_eq!(q.encode_batch(0, &mut b, 1 << 20), 3, "control first");
        assert_eq!(b.owned.len(), 1, "the large attachment only");
        let mut wire: Vec<u8> = b.slices(0).iter().flat_map(|s| s.to_vec()).collect();
        assert_eq!(wire.len(), b.len());
        // Resuming a partial write from any offset gives the rest exactly.
        for from in [0, 1, 40, 4096, b.len() - 1] {
            let rest: Vec<u8> = b.slices(from).iter().flat_map(|s| s.to_vec()).collect();
            assert_eq!(rest, wire[from..], "from {from}");
        }
        b.clear(usize::MAX);
        assert_eq!(q.encode_batch(0, &mut b, 1 << 20), 1, "then the chunk");
        wire.extend(b.slices(0).iter().flat_map(|s| s.to_vec()));
        assert!(q.is_empty() && q.data_bytes() == 0);
        let got = frames(&wire);
        assert_eq!(got.len(), 4);
        assert_eq!(got[1].2[4 + 10..], [7; 4096]);
        assert_eq!((got[3].0, got[3].1), (Kind::Data, 4));
        assert_eq!(got[3].2[8..], [9; 5000]);
    }

    #[test]
    fn a_written_batch_gives_back_the_payloads_nothing_else_holds() {
        let mut q = OutQueue::new();
        q.recycle_data(true);
        let mut b = Batch::new();
        let header = q.header(Kind::Data, 0, 5000);
        b.push(header, Out::data(3, &[9; 4992]));
        let kept = Arc::new(vec![8; 5000]);
        let header = q.header(Kind::Data, 0, 5000);
        b.push(header, Out::Data(Arc::clone(&kept)));
        b.clear_into(usize::MAX, &mut q);
        assert!(b.is_empty());
        let mut first = 3u64.to_be_bytes().to_vec();
        first.extend([9; 4992]);
        assert_eq!(q.take_spare(), [first], "not the one a tail still holds");
        // Off (no stream has more to send): nothing is kept.
        q.recycle_data(false);
        b.push(q.header(Kind::Data, 0, 5000), Out::data(3, &[9; 4992]));
        b.clear_into(usize::MAX, &mut q);
        assert!(q.take_spare().is_empty());
    }

    #[test]
    fn the_tail_is_kept_until_acknowledged_and_sent_again_after_a_resume() {
        let mut q = OutQueue::new();
        q.keep_tail(true);
        q.push_handshake(json(1));
        for n in 2..6 {
            q.push(json(n));
        }
        q.push(Out::Ping);
        let mut wire = Vec::new();
        q.encode(0, &mut wire, usize::MAX);
        let got = frames(&wire);
        assert_eq!(
            got.iter().map(|f| f.1).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 0],
            "handshake and heartbeat unnumbered"
        );
        assert_eq!(
            q.tail_bytes(),
            (2..6).map(|n| json(n).cost()).sum::<usize>()
        );
        assert_eq!(q.acked(5), Err(Unsent), "5 was never sent");
        q.acked(1).unwrap();
        // The link drops; meanwhile something new is queued.
        q.push(json(6));
        q.new_connection();
        q.push_handshake(json(7));
        let mut wire = Vec::new();
        q.encode(0, &mut wire, usize::MAX);
        assert_eq!(frames(&wire).len(), 1, "held: the handshake only");
        // A resume asking for a frame no longer kept is refused.
        assert_eq!(q.resume(0), Err(Unsent));
        q.resume(2).unwrap();
        let mut wire = Vec::new();
        q.encode(9, &mut wire, usize::MAX);
        let got = frames_after(2, &wire);
        assert_eq!(got.iter().map(|f| f.1).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(got[0].2.len(), 4 + 4, "frame 3 is json(4)");
        assert_eq!(got[2].2.len(), 4 + 6, "then the new one");
        q.acked(5).unwrap();
        assert_eq!(q.tail_bytes(), 0);
    }

    #[test]
    fn acknowledged_chunks_give_their_buffers_back_only_while_recycling() {
        let mut q = OutQueue::new();
        q.keep_tail(true);
        let sent = |q: &mut OutQueue, p: Vec<u8>| {
            let seq = q.next_seq();
            q.header(Kind::Data, 0, p.len());
            q.keep_sent(seq, Out::Data(Arc::new(p)));
            seq
        };
        q.recycle_data(true);
        let first = q.spare_payload(64);
        assert_eq!(first.capacity(), 64, "nothing given back yet: a new one");
        let mut p = vec![1u8; 100];
        p.reserve_exact(1000);
        let (at, cap) = (p.as_ptr(), p.capacity());
        let seq = sent(&mut q, p);
        // A payload something else still holds (a write in progress) is not taken.
        let held = Out::Data(Arc::new(vec![2u8; 100]));
        let Out::Data(shared) = &held else {
            unreachable!()
        };
        let seq2 = q.next_seq();
        q.header(Kind::Data, 0, 100);
        q.keep_sent(seq2, Out::Data(Arc::clone(shared)));
        q.acked(seq2).unwrap();
        assert!(seq < seq2);
        let again = q.spare_payload(64);
        assert_eq!(
            (again.as_ptr(), again.capacity(), again.len()),
            (at, cap, 0)
        );
        assert_eq!(
            q.spare_payload(64).capacity(),
            64,
            "the shared one was not kept"
        );
        // A server takes them as they are (a decoder reads the next chunk over the old one).
        let seq4 = sent(&mut q, vec![3u8; 50]);
        q.acked(seq4).unwrap();
        assert_eq!(q.take_spare(), [vec![3u8; 50]]);
        assert!(q.take_spare().is_empty());
        // Off: what is acknowledged from then on is freed, and nothing is kept.
        q.recycle_data(false);
        let seq3 = sent(&mut q, again);
        q.acked(seq3).unwrap();
        assert_eq!(q.spare_payload(8).capacity(), 8);
    }

    #[test]
    fn a_drop_while_the_tail_is_being_sent_again_resumes_from_where_the_peer_is() {
        let mut q = OutQueue::new();
        q.keep_tail(true);
        for n in 1..=5 {
            q.push(json(n));
        }
        let mut wire = Vec::new();
        q.encode(0, &mut wire, usize::MAX);
        // First resume: the peer had 1; 2..=5 go again, but only 2 and 3 make it out.
        q.new_connection();
        q.resume(1).unwrap();
        let mut wire = Vec::new();
        q.encode(0, &mut wire, 1);
        q.encode(0, &mut wire, 1);
        assert_eq!(
            frames_after(1, &wire)
                .iter()
                .map(|f| f.1)
                .collect::<Vec<_>>(),
            [2, 3]
        );
        // Second drop: the peer handled 2 only.
        q.new_connection();
        q.resume(2).unwrap();
        let mut wire = Vec::new();
        q.encode(0, &mut wire, usize::MAX);
        assert_eq!(
            frames_after(2, &wire)
                .iter()
                .map(|f| f.1)
                .collect::<Vec<_>>(),
            [3, 4, 5]
        );
        // Third: the peer had everything.
        q.new_connection();
        q.resume(5).unwrap();
        assert_eq!(q.tail_bytes(), 0);
    }

    #[test]
    fn merged_pushes_replace_the_queued_one_in_its_place() {
        let mut q = OutQueue::new();
        assert!(!q.push_merged("alice", json(1)));
        q.push(json(2));
        assert!(q.push_merged("alice", json(3)));
        assert!(!q.push_merged("bob", json(4)));
        assert_eq!(
            q.control_bytes(),
            [3, 2, 4].map(|n| json(n).cost()).iter().sum::<usize>()
        );
        let mut wire = Vec::new();
        q.encode(0, &mut wire, 1);
        // alice's first push is written: a later one is queued anew.
        assert!(!q.push_merged("alice", json(5)));
        q.encode(0, &mut wire, usize::MAX);
        let lens: Vec<usize> = frames(&wire).iter().map(|f| f.2.len() - 4).collect();
        assert_eq!(lens, [3, 2, 4, 5]);
    }

    #[test]
    fn encode_stops_near_max_and_counts_bytes() {
        let mut q = OutQueue::new();
        for _ in 0..10 {
            q.push(json(100));
        }
        assert_eq!(q.control_bytes(), 10 * json(100).cost());
        let mut wire = Vec::new();
        // Stops once `max` is reached: at most one frame beyond it.
        let n = q.encode(0, &mut wire, 300);
        assert_eq!(n, 3);
        assert_eq!(q.control_bytes(), 7 * json(100).cost());
        // Headers the caller writes itself share the numbering.
        let h = q.header(Kind::Data, 0, 8);
        wire.extend_from_slice(&h);
        wire.extend_from_slice(&9u64.to_be_bytes());
        q.encode(0, &mut wire, usize::MAX);
        let seqs: Vec<u64> = frames(&wire).iter().map(|f| f.1).collect();
        assert_eq!(seqs, (1..=11).collect::<Vec<_>>());
    }
}
