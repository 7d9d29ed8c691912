//! The transfer engine of one session (SPEC §3.5): the streams of buffers and files, both
//! directions, any number at once. Sans-IO as far as the network goes: it queues control
//! messages on the session's out-queue, writes data chunks into the buffer the worker is about
//! to send, and reports events; it reads and writes files itself.
//!
//! Sending: at most [`xfer::MAX_OUTGOING`] streams are offered to the server at once; the rest
//! wait here in order, never refused (SPEC §3.5, "Volume is never a failure"). An offered
//! stream gets its ID (`res{offer}`), then waits for `start` (the receiver has room); from then
//! on [`Transfers::fill_chunk`] feeds its data, round-robin over the streams whose
//! flow-control window has room, one chunk per call, so control messages never wait behind more
//! than one. A file is read chunk by chunk as it goes out, never held whole. The receiver's
//! acknowledgements (relayed as `progress`) open the window and drive `send_progress`; its
//! `fin` ends the stream.
//!
//! Receiving: a file is written to a hidden part file in `download_dir` as chunks arrive, and
//! each stored chunk is acknowledged. When all bytes and the sender's checksum are in and the
//! checksum matches, the file gets its final, fresh name (never overwriting anything) and only
//! then is the app told. A failure or cancel deletes the part file.

use super::event::Event;
use super::events::Events;
use super::ids::new_id;
use super::options::Options;
use crvm_proto::error::*;
use crvm_proto::frame::{Kind, HEADER_LEN};
use crvm_proto::msg::{checksum_hex, xfer};
use crvm_proto::{ClientMsg, Code, Op, Out, OutQueue, XferKind};
use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use xxhash_rust::xxh3::Xxh3;

/// `send_progress` at least this often (in bytes) while data moves…
const PROGRESS_BYTES: u64 = 1024 * 1024;
/// …or this often (in time), whichever comes first.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Longest file name (bytes) the receiver keeps from the sender's.
const NAME_MAX: usize = 200;
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
    /// whole, a file only its window in flight (SPEC §3.5, `max_pending_bytes`).
    fn pending_bytes(&self) -> u64 {
        match self.kind {
            XferKind::File => self.sent - self.acked,
            _ => self.size,
        }
    }
}

enum Sink {
    Bytes(Vec<u8>),
    File {
        file: File,
        part: PathBuf,
        /// The sanitised name the sender gave.
        name: String,
        /// Bytes whose write-back to disk has been started ([`start_writeback`]).
        flushing: u64,
    },
}

struct Incoming {
    task: String,
    from: String,
    size: u64,
    received: u64,
    /// Bytes acknowledged to the sender so far.
    acked: u64,
    sink: Sink,
    hasher: Xxh3,
    /// The sender's checksum, once `data_end` arrived (it may overtake the last chunks).
    expected: Option<String>,
}

impl Incoming {
    /// Deletes what was stored so far.
    fn discard(self) {
        if let Sink::File { file, part, .. } = self.sink {
            drop(file);
            let _ = std::fs::remove_file(part);
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
    inc: HashMap<u64, Incoming>,
    /// The app's cancels awaiting the server's answer: stream → task.
    cancels: HashMap<u64, String>,
    next_order: u64,
}

impl Transfers {
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
    /// stream's window has room. Returns whether it wrote one.
    pub fn fill_chunk(
        &mut self,
        out: &mut OutQueue,
        ack: u64,
        buf: &mut Vec<u8>,
        events: &mut Events,
    ) -> bool {
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
            let room = xfer::WINDOW - (o.sent - o.acked);
            if room == 0 {
                self.turn.push_back(sid); // waits for acknowledgements
                continue;
            }
            let n = (xfer::CHUNK as u64).min(o.size - o.sent).min(room) as usize;
            // The header is written once the bytes are in: a failed read leaves no frame.
            let at = buf.len();
            let data_at = at + HEADER_LEN + 8;
            buf.resize(data_at, 0);
            let read = match &mut o.source {
                Source::Bytes(b) => {
                    let from = o.sent as usize;
                    buf.extend_from_slice(&b[from..from + n]);
                    Ok(())
                }
                Source::File(f) => read_into(f, buf, n),
                Source::Path(_) => unreachable!("opened when offered"),
            };
            if read.is_err() {
                // Unreadable, or shorter than it was: the receiver discards its part.
                buf.truncate(at);
                let o = self.out.remove(&sid).expect("present");
                events.emit(o.result(Err(code(CRVIDEOSDK_FILE_READ_ERR))));
                out.push(Out::msg(&ClientMsg::Cancel { sid }));
                continue;
            }
            let seq = out.next_seq();
            buf[at..at + HEADER_LEN].copy_from_slice(&out.header(Kind::Data, ack, 8 + n));
            buf[at + HEADER_LEN..data_at].copy_from_slice(&sid.to_be_bytes());
            if out.keeps_tail() {
                // Kept until the server has it, to be sent again after a resume.
                let payload = buf[at + HEADER_LEN..].to_vec();
                out.keep_sent(seq, Out::Data(std::sync::Arc::new(payload)));
            }
            o.hasher.update(&buf[data_at..]);
            o.sent += n as u64;
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

    /// Data frame of stream `sid`.
    pub fn on_data(&mut self, sid: u64, bytes: &[u8], io: &mut Io<'_>) {
        let Some(inc) = self.inc.get_mut(&sid) else {
            return; // failed or cancelled: the rest of its chunks are dropped
        };
        if inc.received + bytes.len() as u64 > inc.size {
            let inc = self.inc.remove(&sid).expect("present");
            inc.discard();
            io.send(&ClientMsg::Fin {
                sid,
                code: CRVIDEOSDK_ERR_DATA,
            });
            return;
        }
        let stored = match &mut inc.sink {
            Sink::Bytes(b) => {
                b.extend_from_slice(bytes);
                Ok(())
            }
            Sink::File { file, flushing, .. } => file.write_all(bytes).map(|()| {
                let written = inc.received + bytes.len() as u64;
                if written - *flushing >= WRITEBACK_EVERY {
                    start_writeback(file, *flushing, written - *flushing);
                    *flushing = written;
                }
            }),
        };
        if stored.is_err() {
            let inc = self.inc.remove(&sid).expect("present");
            inc.discard();
            io.send(&ClientMsg::Fin {
                sid,
                code: CRVIDEOSDK_FILE_WRITE_ERR,
            });
            return;
        }
        inc.hasher.update(bytes);
        inc.received += bytes.len() as u64;
        if inc.received - inc.acked >= xfer::ACK_EVERY || inc.received == inc.size {
            inc.acked = inc.received;
            io.send(&ClientMsg::Ack {
                sid,
                bytes: inc.received,
            });
        }
        self.try_finish(sid, io);
    }

    /// A stream to this session starts.
    #[allow(clippy::too_many_arguments)]
    pub fn on_incoming(
        &mut self,
        sid: u64,
        task: String,
        from: String,
        kind: XferKind,
        size: u64,
        name: &str,
        io: &mut Io<'_>,
    ) {
        let fin = |io: &mut Io<'_>, code| io.send(&ClientMsg::Fin { sid, code });
        let sink = match kind {
            // Cmds are not streams: a server that says so is answered as for bad data.
            XferKind::Cmd => return fin(io, CRVIDEOSDK_ERR_DATA),
            XferKind::Buffer if size > io.opts.max_buffer_bytes => {
                return fin(io, CRVIDEOSDK_SENDBUFFER_LARGE)
            }
            XferKind::Buffer => Sink::Bytes(Vec::with_capacity(size.min(1 << 20) as usize)),
            XferKind::File => match open_part(&io.opts.download_dir) {
                Ok((file, part)) => Sink::File {
                    file,
                    part,
                    name: sanitize_name(name),
                    flushing: 0,
                },
                Err(_) => return fin(io, CRVIDEOSDK_FILE_WRITE_ERR),
            },
        };
        self.inc.insert(
            sid,
            Incoming {
                task,
                from,
                size,
                received: 0,
                acked: 0,
                sink,
                hasher: Xxh3::new(),
                expected: None,
            },
        );
        self.try_finish(sid, io); // an empty transfer may already be complete
    }

    pub fn on_data_end(&mut self, sid: u64, hash: String, io: &mut Io<'_>) {
        if let Some(inc) = self.inc.get_mut(&sid) {
            inc.expected = Some(hash);
            self.try_finish(sid, io);
        }
    }

    /// Delivers an incoming stream once every byte and the checksum are in.
    fn try_finish(&mut self, sid: u64, io: &mut Io<'_>) {
        match self.inc.get(&sid) {
            Some(inc) if inc.received == inc.size && inc.expected.is_some() => {}
            _ => return,
        }
        let inc = self.inc.remove(&sid).expect("present");
        if inc.expected.as_deref() != Some(&checksum_hex(inc.hasher.digest128())) {
            inc.discard();
            return io.send(&ClientMsg::Fin {
                sid,
                code: CRVIDEOSDK_SENDFILE_FILEINERROR,
            });
        }
        let code = match inc.sink {
            Sink::Bytes(data) => {
                io.emit(Event::NotifyBufferData {
                    from: inc.from,
                    data,
                });
                CRVIDEOSDK_NOERR
            }
            Sink::File {
                file, part, name, ..
            } => {
                let published = file.sync_all().and_then(|()| {
                    drop(file);
                    publish(&part, &io.opts.download_dir, &name)
                });
                match published {
                    Ok(path) => {
                        io.emit(Event::NotifyFileData {
                            from: inc.from,
                            path: path.to_string_lossy().into_owned(),
                            name,
                        });
                        CRVIDEOSDK_NOERR
                    }
                    Err(_) => {
                        let _ = std::fs::remove_file(&part);
                        CRVIDEOSDK_FILE_WRITE_ERR
                    }
                }
            }
        };
        io.send(&ClientMsg::Fin { sid, code });
    }

    /// The sender cancelled (or went away): discard, tell the app, answer the server.
    pub fn on_cancelled(&mut self, sid: u64, io: &mut Io<'_>) {
        let code = match self.inc.remove(&sid) {
            Some(inc) => {
                io.emit(Event::NotifyCancelSend {
                    task_id: inc.task.clone(),
                });
                inc.discard();
                CRVIDEOSDK_NOERR
            }
            // Already delivered (or failed and answered): nothing to cancel.
            None => CRVIDEOSDK_TRANSID_INVALID,
        };
        io.send(&ClientMsg::CancelAck { sid, code });
    }

    /// The receiver holds `bytes` of an outgoing stream.
    pub fn on_progress(&mut self, sid: u64, bytes: u64, io: &mut Io<'_>) {
        let Some(o) = self.out.get_mut(&sid) else {
            return;
        };
        o.acked = bytes.clamp(o.acked, o.sent);
        let now = io.now;
        let due = match o.reported {
            None => true,
            Some((at_bytes, at)) => {
                o.acked >= at_bytes + PROGRESS_BYTES
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
        for (_, inc) in self.inc.drain() {
            inc.discard();
        }
        self.turn.clear();
    }
}

/// Appends exactly `n` bytes read from `f` to `buf` (into its spare capacity, not zeroed
/// first); a short file is an error.
/// How often a file being received has its write-back to disk started.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// Asks the kernel to start writing `len` bytes at `offset` of `file` to disk, without waiting
/// for them. A received file is synced before it is reported; with its write-back started as
/// the data arrives, that final sync — which blocks the worker, and with it every event of the
/// session — has little left to wait for, and a large file never piles up as dirty memory.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a system call on a descriptor `file` keeps open; no memory is passed. Its result
    // is ignored: if it fails, the final sync does all the work, as without it.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

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

/// Creates a fresh hidden part file in `dir`.
fn open_part(dir: &Path) -> io::Result<(File, PathBuf)> {
    let part = dir.join(format!(".crvm-{}.part", new_id("")));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&part)?;
    Ok((file, part))
}

/// What the receiver keeps of the sender's file name: the last path component, without control
/// characters (NUL included), never empty, `.` or `..`, at most [`NAME_MAX`] bytes.
pub(crate) fn sanitize_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let mut clean: String = base.chars().filter(|c| !c.is_control()).collect();
    let trimmed = clean.trim();
    if trimmed.is_empty() || trimmed == "." || trimmed == ".." {
        return "file".into();
    }
    clean = trimmed.to_owned();
    if clean.len() > NAME_MAX {
        let mut end = NAME_MAX;
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
    }
    clean
}

/// Gives the finished part file its final name in `dir`: `name`, else `stem (1).ext`,
/// `stem (2).ext`, … — never replacing an existing file (a hard link fails if the name exists).
fn publish(part: &Path, dir: &Path, name: &str) -> io::Result<PathBuf> {
    let dir = std::fs::canonicalize(dir)?;
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    for n in 0..1000 {
        let candidate = if n == 0 {
            dir.join(name)
        } else {
            dir.join(format!("{stem} ({n}){ext}"))
        };
        match std::fs::hard_link(part, &candidate) {
            Ok(()) => {
                std::fs::remove_file(part)?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    let candidate = dir.join(format!("{stem}-{}{ext}", new_id("")));
    std::fs::hard_link(part, &candidate)?;
    std::fs::remove_file(part)?;
    Ok(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_name("a\\b\\c.txt"), "c.txt");
        assert_eq!(sanitize_name(".."), "file");
        assert_eq!(sanitize_name("dir/"), "file");
        assert_eq!(sanitize_name("x\0y\n.txt"), "xy.txt");
        assert_eq!(sanitize_name("  résumé final.pdf "), "résumé final.pdf");
        assert_eq!(sanitize_name(&"é".repeat(150)).len(), 200);
    }

    #[test]
    fn publish_never_overwrites() {
        let dir = std::env::temp_dir().join(format!("crvm-publish-{}", new_id("")));
        std::fs::create_dir(&dir).unwrap();
        let mut got = Vec::new();
        for body in ["one", "two", "three"] {
            let (mut f, part) = open_part(&dir).unwrap();
            f.write_all(body.as_bytes()).unwrap();
            let path = publish(&part, &dir, "report.txt").unwrap();
            assert!(!part.exists());
            got.push((path, body));
        }
        let names: Vec<String> = got
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["report.txt", "report (1).txt", "report (2).txt"]);
        for (p, body) in &got {
            assert_eq!(std::fs::read_to_string(p).unwrap(), *body);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
