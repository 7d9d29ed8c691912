//! The transfer engine of one session (SPEC §3.5): cmds, buffers and files, both directions,
//! any number at once, driven by the worker.
//!
//! Sending: once the server has given a transfer its stream ID, [`Transfers::pump`] feeds data
//! chunks to the link — one chunk queued at a time, so control messages never wait behind more
//! than one — round-robin over the transfers whose flow-control window has room. A file is read
//! chunk by chunk as it goes out, never held whole. The receiver's acknowledgements (relayed as
//! `progress`) open the window and drive `send_progress`; its `fin` ends the transfer.
//!
//! Receiving: a file is written to a hidden part file in `download_dir` as chunks arrive, and
//! each stored chunk is acknowledged. When all bytes and the sender's checksum are in and the
//! checksum matches, the file gets its final, fresh name (never overwriting anything) and only
//! then is the app told. A failure or cancel deletes the part file.

use super::conn::Conn;
use super::event::Event;
use super::ids::new_id;
use super::options::Options;
use super::request::{SendSpec, Source};
use base64::Engine as _;
use crvm_proto::error::*;
use crvm_proto::msg::{checksum_hex, to_json, xfer, ClientMsg};
use crvm_proto::XferKind;
use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use xxhash_rust::xxh3::Xxh3;

/// `send_progress` at least this often (in bytes) while data moves…
const PROGRESS_BYTES: u64 = 1024 * 1024;
/// …or this often (in time), whichever comes first.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Longest file name (bytes) the receiver keeps from the sender's.
const NAME_MAX: usize = 200;

/// What a transfer step needs from the worker: the link, the session's options, and where
/// events go (in order).
pub(crate) struct Io<'a> {
    pub conn: &'a mut Conn,
    pub opts: &'a Options,
    pub events: &'a mut Vec<Event>,
}

impl Io<'_> {
    fn send(&mut self, msg: &ClientMsg) {
        self.conn.send_control(&to_json(msg), &[]);
    }
}

struct Outgoing {
    spec: SendSpec,
    /// Bytes handed to the link.
    sent: u64,
    /// Bytes the receiver has stored.
    acked: u64,
    hasher: Xxh3,
    cancelling: bool,
    /// Last `send_progress` reported, and when.
    reported: Option<(u64, Instant)>,
}

enum Sink {
    Bytes(Vec<u8>),
    File {
        file: File,
        part: PathBuf,
        /// The sanitised name the sender gave.
        name: String,
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

/// Every transfer of the session.
#[derive(Default)]
pub(crate) struct Transfers {
    out: HashMap<u64, Outgoing>,
    /// Outgoing streams that may still have data to send, in round-robin order.
    turn: VecDeque<u64>,
    inc: HashMap<u64, Incoming>,
    /// The app's cancels awaiting the server's answer: stream → task.
    cancels: HashMap<u64, String>,
}

impl Transfers {
    pub fn is_sending(&self, task: &str) -> Option<u64> {
        self.out
            .iter()
            .find(|(_, o)| o.spec.task == task)
            .map(|(sid, _)| *sid)
    }

    /// The server accepted an offer and gave it stream `sid`.
    pub fn started(&mut self, sid: u64, spec: SendSpec, io: &mut Io<'_>) {
        let cmd = spec.kind == XferKind::Cmd;
        let (cancel, size) = (spec.cancel, spec.size);
        let sent = if cmd { spec.size } else { 0 };
        self.out.insert(
            sid,
            Outgoing {
                spec,
                sent,
                acked: 0,
                hasher: Xxh3::new(),
                cancelling: false,
                reported: None,
            },
        );
        if cancel {
            self.cancel_sid(sid, io);
        } else if !cmd && size == 0 {
            // Nothing to send: the checksum of no bytes completes it at once.
            let hash = checksum_hex(Xxh3::new().digest128());
            io.send(&ClientMsg::DataEnd { sid, hash });
        } else if !cmd {
            self.turn.push_back(sid);
        }
    }

    /// The app cancels `task`. Returns false if no started transfer has that task.
    pub fn cancel(&mut self, task: &str, io: &mut Io<'_>) -> bool {
        match self.is_sending(task) {
            Some(sid) => {
                self.cancel_sid(sid, io);
                true
            }
            None => false,
        }
    }

    fn cancel_sid(&mut self, sid: u64, io: &mut Io<'_>) {
        let o = self.out.get_mut(&sid).expect("caller checked");
        if o.spec.kind == XferKind::Cmd || o.cancelling {
            // A cmd cannot be cancelled; a second cancel finds nothing left to cancel.
            io.events.push(Event::CancelSendRlst {
                task_id: o.spec.task.clone(),
                code: CRVIDEOSDK_TRANSID_INVALID,
            });
            return;
        }
        o.cancelling = true;
        self.cancels.insert(sid, o.spec.task.clone());
        io.send(&ClientMsg::Cancel { sid });
    }

    /// Queues the next data chunk if the link has none queued and some window has room.
    /// Returns whether it queued one.
    pub fn pump(&mut self, io: &mut Io<'_>) -> bool {
        if io.conn.data_queued() > 0 {
            return false;
        }
        for _ in 0..self.turn.len() {
            let Some(sid) = self.turn.pop_front() else {
                break;
            };
            let Some(o) = self.out.get_mut(&sid) else {
                continue; // ended
            };
            if o.cancelling || o.sent >= o.spec.size {
                continue; // nothing more to send on it
            }
            let room = xfer::WINDOW - (o.sent - o.acked);
            if room == 0 {
                self.turn.push_back(sid); // waits for acknowledgements
                continue;
            }
            let n = (xfer::CHUNK as u64).min(o.spec.size - o.sent).min(room) as usize;
            let (from, hasher) = (o.sent as usize, &mut o.hasher);
            let filled = io.conn.send_data(sid, n, |dst| {
                match &mut o.spec.source {
                    Source::Bytes(b) => dst.copy_from_slice(&b[from..from + n]),
                    Source::File(f) => f.read_exact(dst)?,
                }
                hasher.update(dst);
                Ok::<(), io::Error>(())
            });
            if filled.is_err() {
                // Unreadable, or shorter than it was: the receiver discards its part.
                let o = self.out.remove(&sid).expect("present");
                io.events.push(o.spec.result(CRVIDEOSDK_FILE_READ_ERR));
                io.send(&ClientMsg::Cancel { sid });
                continue;
            }
            o.sent += n as u64;
            if o.sent == o.spec.size {
                let hash = checksum_hex(o.hasher.digest128());
                io.send(&ClientMsg::DataEnd { sid, hash });
            } else {
                self.turn.push_back(sid);
            }
            return true;
        }
        false
    }

    /// Data frame payload: stream ID, then bytes.
    pub fn on_data(&mut self, payload: &[u8], io: &mut Io<'_>) {
        let sid = u64::from_be_bytes(payload[..8].try_into().expect("decoder checked"));
        let bytes = &payload[8..];
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
            Sink::File { file, .. } => file.write_all(bytes),
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

    /// A transfer to this session starts.
    #[allow(clippy::too_many_arguments)]
    pub fn on_incoming(
        &mut self,
        sid: u64,
        task: String,
        from: String,
        kind: XferKind,
        size: u64,
        name: &str,
        attachment: &[u8],
        io: &mut Io<'_>,
    ) {
        let fin = |io: &mut Io<'_>, code| io.send(&ClientMsg::Fin { sid, code });
        let sink = match kind {
            XferKind::Cmd => {
                io.events.push(Event::NotifyCmdData {
                    source_user_id: from,
                    data_base64: base64::engine::general_purpose::STANDARD.encode(attachment),
                });
                return fin(io, CRVIDEOSDK_NOERR);
            }
            XferKind::Buffer if size > io.opts.max_buffer_bytes => {
                return fin(io, CRVIDEOSDK_SENDBUFFER_LARGE)
            }
            XferKind::Buffer => Sink::Bytes(Vec::with_capacity(size.min(1 << 20) as usize)),
            XferKind::File => match open_part(&io.opts.download_dir) {
                Ok((file, part)) => Sink::File {
                    file,
                    part,
                    name: sanitize_name(name),
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

    /// Delivers an incoming transfer once every byte and the checksum are in.
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
            Sink::Bytes(b) => {
                io.events.push(Event::NotifyBufferData {
                    source_user_id: inc.from,
                    data_base64: base64::engine::general_purpose::STANDARD.encode(b),
                });
                CRVIDEOSDK_NOERR
            }
            Sink::File { file, part, name } => {
                let published = file.sync_all().and_then(|()| {
                    drop(file);
                    publish(&part, &io.opts.download_dir, &name)
                });
                match published {
                    Ok(path) => {
                        io.events.push(Event::NotifyFileData {
                            source_user_id: inc.from,
                            tmp_file: path.to_string_lossy().into_owned(),
                            org_file_name: name,
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
                io.events.push(Event::NotifyCancelSend {
                    send_id: inc.task.clone(),
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
        let now = Instant::now();
        let due = match o.reported {
            None => true,
            Some((at_bytes, at)) => {
                o.acked >= at_bytes + PROGRESS_BYTES
                    || now >= at + PROGRESS_EVERY
                    || o.acked == o.spec.size
            }
        };
        if due && !o.cancelling && o.reported.map(|(b, _)| b) != Some(o.acked) {
            o.reported = Some((o.acked, now));
            io.events.push(progress(o));
        }
    }

    /// The server reports how an outgoing transfer ended.
    pub fn on_xfer_end(&mut self, sid: u64, code: i32, io: &mut Io<'_>) {
        let Some(mut o) = self.out.remove(&sid) else {
            return;
        };
        if code == CRVIDEOSDK_NOERR && o.spec.kind != XferKind::Cmd {
            o.acked = o.spec.size;
            if o.reported.map(|(b, _)| b) != Some(o.acked) {
                io.events.push(progress(&o));
            }
        }
        io.events.push(o.spec.result(code));
    }

    /// The answer to one of the app's cancels (or to our own after a read error).
    pub fn on_cancel_done(&mut self, sid: u64, code: i32, io: &mut Io<'_>) {
        let Some(task) = self.cancels.remove(&sid) else {
            return; // a cancel we sent ourselves after a read error: already reported
        };
        if code == CRVIDEOSDK_NOERR {
            self.out.remove(&sid); // cancelled: no send_*_rlst follows
        }
        io.events.push(Event::CancelSendRlst {
            task_id: task,
            code,
        });
    }

    /// The session ended (link lost with `code`, or logout): every outgoing transfer and
    /// pending cancel gets its result; incoming ones are discarded.
    pub fn end_all(&mut self, code: i32, events: &mut Vec<Event>) {
        let mut out: Vec<(u64, Outgoing)> = self.out.drain().collect();
        out.sort_by_key(|(sid, _)| *sid);
        for (_, o) in out {
            events.push(o.spec.result(code));
        }
        let mut cancels: Vec<(u64, String)> = self.cancels.drain().collect();
        cancels.sort();
        for (_, task_id) in cancels {
            events.push(Event::CancelSendRlst { task_id, code });
        }
        for (_, inc) in self.inc.drain() {
            inc.discard();
        }
        self.turn.clear();
    }
}

fn progress(o: &Outgoing) -> Event {
    Event::SendProgress {
        task_id: o.spec.task.clone(),
        sent: o.acked as i64,
        total: o.spec.size as i64,
    }
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
