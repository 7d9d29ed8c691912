//! The transfer engine of one session (docs/API.md §3.5): the streams of buffers and files, both
//! directions, any number at once. Sans-IO as far as the network goes: it queues control
//! messages on the session's out-queue, writes data chunks into the buffer the worker is about
//! to send, and reports events; it reads and writes files itself.
//!
//! Sending: at most [`xfer::MAX_OUTGOING`] streams are offered to the server at once; the rest
//! wait here in order, never refused (docs/API.md §3.5, "Volume is never a failure"). An offered
//! stream gets its ID (`res{offer}`), then waits for `start` (the receiver has room); from then
//! on [`Transfers::fill_chunk`] feeds its data, round-robin over the streams whose
//! flow-control window has room, one chunk per call, so control messages never wait behind more
//! than one. A file is read chunk by chunk as it goes out, never held whole. The receiver's
//! acknowledgements (relayed as `progress`) open the window and drive `send_progress`; its
//! `fin` ends the stream.
//!
//! Receiving is [`recv`]'s, its files written off the worker by [`disk`].

mod disk;
mod path;
mod recv;

pub(crate) use disk::Wake;
use path::Path as PathEstimate;
use recv::Receiving;

use super::event::Event;
use super::events::Events;
use super::options::Options;
use crvm_proto::error::*;
use crvm_proto::frame::Kind;
use crvm_proto::msg::{checksum_hex, xfer};
use crvm_proto::{Batch, ClientMsg, Code, Op, Out, OutQueue, XferKind};
use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use xxhash_rust::xxh3::Xxh3;

/// `send_progress` at least this often (in bytes) while data moves…
const PROGRESS_BYTES: u64 = 1024 * 1024;
/// …so one is due once this much more is stored: the receiver acknowledges at least every
/// `ACK_EVERY` bytes, so the acknowledgement that crosses this mark is still within
/// [`PROGRESS_BYTES`] of the last event (with smaller acknowledgements the events come more
/// often, never further apart).
const PROGRESS_DUE: u64 = PROGRESS_BYTES - xfer::ACK_EVERY;
/// …or this often (in time), whichever comes first.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Files waiting in the queue that keep their descriptor open; beyond this, a queued file is
/// reopened by its path when its turn comes (so that a burst of files cannot exhaust the
/// process's descriptors).
const MAX_OPEN_QUEUED: usize = 64;

/// What a transfer step needs from the session: its out-queue, where events go (in order), the
/// session's options and the time.
pub(crate) struct Io<'a> {
    pub out: &'a mut OutQueue,
    pub events: &'a mut Events,
    pub opts: &'a Options,
    pub now: Instant,
}

impl Io<'_> {
    fn send(&mut self, msg: &ClientMsg) {
        self.out.push(Out::msg(msg));
    }

    fn emit(&mut self, ev: Event) {
        self.events.emit(ev);
    }
}

/// Where an outgoing stream's bytes come from.
#[derive(Debug)]
pub(crate) enum Source {
    Bytes(Vec<u8>),
    File(File),
    /// A queued file whose descriptor was not kept (see [`MAX_OPEN_QUEUED`]).
    Path(PathBuf),
}

/// Opens a file to send: non-blocking, so that opening a FIFO or a device cannot hang the
/// caller (regular files ignore the flag); anything but a regular file is refused. Returns the
/// file and its size.
pub(crate) fn open_source(path: &Path) -> Result<(File, u64), Code> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => code(CRVIDEOSDK_FILE_NOT_EXIST),
            _ => code(CRVIDEOSDK_FILE_READ_ERR),
        })?;
    let meta = file
        .metadata()
        .map_err(|_| code(CRVIDEOSDK_FILE_READ_ERR))?;
    if !meta.is_file() {
        return Err(code(CRVIDEOSDK_FILE_READ_ERR));
    }
    Ok((file, meta.len()))
}

/// A buffer or file to send, as the app gave it.
pub(crate) struct Outgoing {
    pub task: String,
    pub to: String,
    pub kind: XferKind,
    pub source: Source,
    pub size: u64,
    /// The path as the app gave it (files; reported back in `send_file_rlst`).
    pub path: String,
    /// Creation order, for ending streams in the order they were accepted.
    order: u64,
    started: bool,
    /// Bytes handed to the link.
    sent: u64,
    /// Bytes the receiver has stored.
    acked: u64,
    /// The window and chunk size the path allows, from `start` on.
    est: Option<PathEstimate>,
    hasher: Xxh3,
    /// The app asked to cancel (applied as soon as the stream has an ID).
    cancel: bool,
    /// Last `send_progress` reported, and when.
    reported: Option<(u64, Instant)>,
}

impl Outgoing {
    pub fn new(
        task: String,
        to: String,
        kind: XferKind,
        source: Source,
        size: u64,
        path: String,
    ) -> Self {
        Outgoing {
            task,
            to,
            kind,
            source,
            size,
            path,
            order: 0,
            started: false,
            sent: 0,
            acked: 0,
            est: None,
            hasher: Xxh3::new(),
            cancel: false,
            reported: None,
        }
    }

    /// The result event of this stream with `result`.
    fn result(&self, result: Result<(), Code>) -> Event {
        let task_id = self.task.clone();
        match self.kind {
            XferKind::File => Event::FileSent {
                task_id,
                path: self.path.clone(),
                result,
            },
            _ => Event::BufferSent { task_id, result },
        }
    }

    fn progress(&self) -> Event {
        Event::SendProgress {
            task_id: self.task.clone(),
            sent: self.acked,
            total: self.size,
        }
    }

    /// Bytes of this stream held in memory until the receiver acknowledges them: a buffer
    /// whole, a file only its window in flight (docs/API.md §3.5, `max_pending_bytes`).
    fn pending_bytes(&self) -> u64 {
        match self.kind {
            XferKind::File => self.sent - self.acked,
            _ => self.size,
        }
    }
}

/// Every stream of the session.
#[derive(Default)]
pub(crate) struct Transfers {
    /// Accepted and not yet offered, in order.
    queued: VecDeque<Outgoing>,
    /// Offered, waiting for `res{offer}`, by task.
    offered: HashMap<String, Outgoing>,
    /// With a stream ID, by stream.
    out: HashMap<u64, Outgoing>,
    /// Started streams that may still have data to send, in round-robin order.
    turn: VecDeque<u64>,
    /// Incoming streams.
    pub recv: Receiving,
    /// The app's cancels awaiting the server's answer: stream → task.
    cancels: HashMap<u64, String>,
    next_order: u64,
}

impl Transfers {
    /// The delivery rate of the outgoing streams together, in bytes per second (0 when none
    /// is moving).
    pub fn out_rate(&self) -> f64 {
        self.out
            .values()
            .filter_map(|o| o.est.as_ref())
            .map(PathEstimate::rate)
            .sum()
    }

    /// Takes a stream to send; it goes out when fewer than [`xfer::MAX_OUTGOING`] are offered.
    pub fn queue(&mut self, mut o: Outgoing) {
        if matches!(o.source, Source::File(_)) && self.open_queued() >= MAX_OPEN_QUEUED {
            o.source = Source::Path(PathBuf::from(&o.path));
        }
        self.next_order += 1;
        o.order = self.next_order;
        self.queued.push_back(o);
    }

    fn open_queued(&self) -> usize {
        self.queued
            .iter()
            .filter(|o| matches!(o.source, Source::File(_)))
            .count()
    }

    /// Bytes of outgoing streams held until acknowledged (see [`Outgoing::pending_bytes`]).
    pub fn pending_bytes(&self) -> u64 {
        let all = self
            .queued
            .iter()
            .chain(self.offered.values())
            .chain(self.out.values());
        all.map(Outgoing::pending_bytes).sum()
    }

    /// The next offer to send, if fewer than [`xfer::MAX_OUTGOING`] streams are offered: the
    /// task and the request body. A queued file that can no longer be opened ends here.
    pub fn next_offer(&mut self, io: &mut Io<'_>) -> Option<(String, Op)> {
        while self.offered.len() + self.out.len() < xfer::MAX_OUTGOING {
            let mut o = self.queued.pop_front()?;
            if let Source::Path(path) = &o.source {
                match open_source(path) {
                    Ok((file, size)) => {
                        o.source = Source::File(file);
                        o.size = size;
                    }
                    Err(e) => {
                        io.emit(o.result(Err(e)));
                        continue;
                    }
                }
            }
            let op = Op::Offer {
                task: o.task.clone(),
                to: o.to.clone(),
                kind: o.kind,
                size: o.size,
                name: match o.kind {
                    XferKind::File => base_name(&o.path).to_owned(),
                    _ => String::new(),
                },
            };
            let task = o.task.clone();
            self.offered.insert(task.clone(), o);
            return Some((task, op));
        }
        None
    }

    /// The server gave the offer of `task` stream `sid`; data waits for `start`.
    pub fn offered(&mut self, task: &str, sid: u64, io: &mut Io<'_>) {
        let Some(o) = self.offered.remove(task) else {
            return;
        };
        let cancel = o.cancel;
        self.out.insert(sid, o);
        if cancel {
            self.cancel_sid(sid, io);
        }
    }

    /// The offer of `task` failed with `code`: the stream ends. A cancel made meanwhile gets
    /// `cancel_code`: 1104 when the server refused the offer (there was nothing to cancel), the
    /// same code as the stream when the session or the request ended (207, 202, 12).
    pub fn offer_failed(&mut self, task: &str, code: Code, cancel_code: Code, io: &mut Io<'_>) {
        let Some(o) = self.offered.remove(task) else {
            return;
        };
        io.emit(o.result(Err(code)));
        if o.cancel {
            io.emit(Event::CancelSend {
                task_id: o.task,
                result: Err(cancel_code),
            });
        }
    }

    /// The receiver has room for stream `sid`: its data may flow.
    pub fn on_start(&mut self, sid: u64, io: &mut Io<'_>) {
        let Some(o) = self.out.get_mut(&sid) else {
            return;
        };
        if o.started {
            return;
        }
        o.started = true;
        o.est = Some(PathEstimate::new(io.now));
        if o.size == 0 {
            // Nothing to send: the checksum of no bytes completes it at once.
            let hash = checksum_hex(Xxh3::new().digest128());
            io.send(&ClientMsg::DataEnd { sid, hash });
        } else if !o.cancel {
            self.turn.push_back(sid);
        }
    }

    /// The app cancels `task`. Returns false if no stream has that task.
    pub fn cancel(&mut self, task: &str, io: &mut Io<'_>) -> bool {
        if let Some(i) = self.queued.iter().position(|o| o.task == task) {
            // Never offered: nobody else knows of it.
            let o = self.queued.remove(i).expect("found");
            io.emit(Event::CancelSend {
                task_id: o.task,
                result: Ok(()),
            });
            return true;
        }
        if let Some(o) = self.offered.get_mut(task) {
            if o.cancel {
                io.emit(Event::CancelSend {
                    task_id: task.to_owned(),
                    result: Err(code(CRVIDEOSDK_TRANSID_INVALID)),
                });
            }
            o.cancel = true;
            return true;
        }
        match self
            .out
            .iter()
            .find(|(_, o)| o.task == task)
            .map(|(sid, _)| *sid)
        {
            Some(sid) => {
                self.cancel_sid(sid, io);
                true
            }
            None => false,
        }
    }

    fn cancel_sid(&mut self, sid: u64, io: &mut Io<'_>) {
        let o = self.out.get_mut(&sid).expect("caller checked");
        if self.cancels.contains_key(&sid) {
            // A second cancel finds nothing left to cancel.
            io.emit(Event::CancelSend {
                task_id: o.task.clone(),
                result: Err(code(CRVIDEOSDK_TRANSID_INVALID)),
            });
            return;
        }
        o.cancel = true;
        self.cancels.insert(sid, o.task.clone());
        io.send(&ClientMsg::Cancel { sid });
    }

    /// Appends the next data chunk to `buf` (header included, numbered by `out`), if a started
    /// stream's window has room for it; window and chunk size follow the stream's path
    /// ([`path`]). Returns whether it wrote one.
    pub fn fill_chunk(
        &mut self,
        out: &mut OutQueue,
        ack: u64,
        batch: &mut Batch,
        events: &mut Events,
        now: Instant,
    ) -> bool {
        // Acknowledged and written chunks' buffers are reused while a stream has more to send.
        out.recycle_data(self.out.values().any(|o| !o.cancel && o.sent < o.size));
        for _ in 0..self.turn.len() {
            let Some(sid) = self.turn.pop_front() else {
                break;
            };
            let Some(o) = self.out.get_mut(&sid) else {
                continue; // ended
            };
            if o.cancel || o.sent >= o.size {
                continue; // nothing more to send on it
            }
            let est = o.est.as_ref().expect("started");
            let room = est.window(now).saturating_sub(o.sent - o.acked);
            let n = (est.chunk() as u64).min(o.size - o.sent);
            if room < n {
                self.turn.push_back(sid); // waits for acknowledgements
                continue;
            }
            let n = n as usize;
            // The chunk is read into a buffer of its own (an acknowledged or written chunk's),
            // which the write and the resume tail share: it is written in place, not copied.
            let mut payload = out.spare_payload(8 + n);
            payload.extend_from_slice(&sid.to_be_bytes());
            let read = match &mut o.source {
                Source::Bytes(b) => {
                    let from = o.sent as usize;
                    payload.extend_from_slice(&b[from..from + n]);
                    Ok(())
                }
                Source::File(f) => read_into(f, &mut payload, n),
                Source::Path(_) => unreachable!("opened when offered"),
            };
            if read.is_err() {
                // Unreadable, or shorter than it was: the receiver discards its part.
                let o = self.out.remove(&sid).expect("present");
                events.emit(o.result(Err(code(CRVIDEOSDK_FILE_READ_ERR))));
                out.push(Out::msg(&ClientMsg::Cancel { sid }));
                continue;
            }
            o.hasher.update(&payload[8..]);
            // The header is stamped once the bytes are in: a failed read takes no number.
            let seq = out.next_seq();
            let header = out.header(Kind::Data, ack, payload.len());
            let frame = Out::Data(std::sync::Arc::new(payload));
            // Kept until the server has it, to be sent again after a resume.
            out.keep_sent(seq, frame.clone());
            batch.push(header, frame);
            o.sent += n as u64;
            o.est.as_mut().expect("started").sent(o.sent, now);
            if o.sent == o.size {
                let hash = checksum_hex(o.hasher.digest128());
                out.push(Out::msg(&ClientMsg::DataEnd { sid, hash }));
            } else {
                self.turn.push_back(sid);
            }
            return true;
        }
        false
    }

    /// The receiver holds `bytes` of an outgoing stream.
    pub fn on_progress(&mut self, sid: u64, bytes: u64, io: &mut Io<'_>) {
        let Some(o) = self.out.get_mut(&sid) else {
            return;
        };
        o.acked = bytes.clamp(o.acked, o.sent);
        let now = io.now;
        if let Some(est) = &mut o.est {
            est.acked(o.acked, now);
        }
        let due = match o.reported {
            None => true,
            Some((at_bytes, at)) => {
                o.acked >= at_bytes + PROGRESS_DUE
                    || now >= at + PROGRESS_EVERY
                    || o.acked == o.size
            }
        };
        if due && !o.cancel && o.reported.map(|(b, _)| b) != Some(o.acked) {
            o.reported = Some((o.acked, now));
            let ev = o.progress();
            io.emit(ev);
        }
    }

    /// The server reports how an outgoing stream ended.
    pub fn on_xfer_end(&mut self, sid: u64, code: i32, io: &mut Io<'_>) {
        let Some(mut o) = self.out.remove(&sid) else {
            return;
        };
        let result = check(code);
        if result.is_ok() {
            o.acked = o.size;
            if o.reported.map(|(b, _)| b) != Some(o.acked) {
                io.emit(o.progress());
            }
        }
        io.emit(o.result(result));
    }

    /// The answer to one of the app's cancels (or to our own after a read error).
    pub fn on_cancel_done(&mut self, sid: u64, code: i32, io: &mut Io<'_>) {
        let Some(task) = self.cancels.remove(&sid) else {
            return; // a cancel we sent ourselves after a read error: already reported
        };
        let result = check(code);
        if result.is_ok() {
            self.out.remove(&sid); // cancelled: no send_*_rlst follows
        }
        io.emit(Event::CancelSend {
            task_id: task,
            result,
        });
    }

    /// The session ended (link lost with `code`, or logout): every outgoing stream and pending
    /// cancel gets its result, in the order they were accepted; incoming ones are discarded.
    pub fn end_all(&mut self, code: Code, events: &mut Events) {
        let mut all: Vec<Outgoing> = self.queued.drain(..).collect();
        all.extend(self.offered.drain().map(|(_, o)| o));
        all.extend(self.out.drain().map(|(_, o)| o));
        all.sort_by_key(|o| o.order);
        for o in all {
            events.emit(o.result(Err(code)));
        }
        let mut cancels: Vec<(u64, String)> = self.cancels.drain().collect();
        cancels.sort();
        for (_, task_id) in cancels {
            events.emit(Event::CancelSend {
                task_id,
                result: Err(code),
            });
        }
        self.recv.end_all();
        self.turn.clear();
    }
}

/// Appends exactly `n` bytes read from `f` to `buf` (into its spare capacity, not zeroed
/// first); a short file is an error.
fn read_into(f: &mut File, buf: &mut Vec<u8>, n: usize) -> io::Result<()> {
    buf.reserve(n);
    let got = f.take(n as u64).read_to_end(buf)?;
    if got != n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// The last component of a path (what the receiver is told the file is called).
pub(crate) fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
