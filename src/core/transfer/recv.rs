//! Receiving (docs/API.md §3.5): a buffer is collected in memory; a file is written to a hidden part
//! file in `download_dir` by the disk writer ([`super::disk`]), off the worker, as chunks
//! arrive, and each stored chunk is acknowledged (so the sender's window bounds what waits for
//! the disk). When all bytes and the sender's checksum are in and the checksum matches, the
//! writer syncs the file and gives it its final, fresh name (never overwriting anything), and
//! only then is the app told. A failure or cancel deletes the part file.

use super::disk::{Disk, Done, Wake};
use super::Io;
use crate::core::event::Event;
use crate::core::ids::new_id;
use crvm_proto::error::*;
use crvm_proto::frame::split_data;
use crvm_proto::msg::{checksum_hex, xfer};
use crvm_proto::{ClientMsg, Decoder, XferKind};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::Xxh3;

/// Longest file name (bytes) the receiver keeps from the sender's.
const NAME_MAX: usize = 200;

enum Sink {
    Bytes(Vec<u8>),
    File {
        part: PathBuf,
        /// The sanitised name the sender gave.
        name: String,
    },
}

struct Incoming {
    task: String,
    from: String,
    size: u64,
    /// Bytes handed to the sink.
    received: u64,
    /// Bytes the sink holds (a file's: written by the disk writer).
    stored: u64,
    /// Bytes acknowledged to the sender so far.
    acked: u64,
    /// The length of the last chunk received (acknowledgements follow the sender's chunks).
    chunk: u64,
    sink: Sink,
    hasher: Xxh3,
    /// The sender's checksum, once `data_end` arrived (it may overtake the last chunks).
    expected: Option<String>,
    /// Complete and checked: the disk writer syncs and names the file.
    finishing: bool,
    /// The sender cancelled while the file was being finished: answered once it is.
    cancelled: bool,
}

/// The incoming streams of a session, and the writer of their files.
#[derive(Default)]
pub(crate) struct Receiving {
    inc: HashMap<u64, Incoming>,
    disk: Disk,
    /// What the disk writer finished, being handled (kept for its memory).
    done: Vec<Done>,
}

impl Receiving {
    /// Files are written on a thread of their own, which calls `wake` when it has stored or
    /// finished something ([`Receiving::disk_done`] takes it).
    pub fn set_wake(&mut self, wake: Wake) {
        self.disk.set_wake(wake);
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
                Ok((file, part)) => {
                    self.disk.open(sid, file);
                    Sink::File {
                        part,
                        name: sanitize_name(name),
                    }
                }
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
                stored: 0,
                acked: 0,
                chunk: 0,
                sink,
                hasher: Xxh3::new(),
                expected: None,
                finishing: false,
                cancelled: false,
            },
        );
        self.try_finish(sid, io); // an empty transfer may already be complete
    }

    /// A data frame's payload: its stream ID, then the bytes. Borrowed from the read buffer
    /// (a file's bytes are copied into a buffer for the disk writer), or read into a buffer of
    /// its own, which goes to the disk writer as it is.
    pub fn on_data(&mut self, payload: Cow<'_, [u8]>, io: &mut Io<'_>) {
        let (sid, bytes) = split_data(&payload);
        let Some(inc) = self.inc.get_mut(&sid) else {
            return; // failed or cancelled: the rest of its chunks are dropped
        };
        if inc.received + bytes.len() as u64 > inc.size {
            let inc = self.inc.remove(&sid).expect("present");
            self.discard(sid, inc);
            io.send(&ClientMsg::Fin {
                sid,
                code: CRVIDEOSDK_ERR_DATA,
            });
            return;
        }
        inc.hasher.update(bytes);
        inc.received += bytes.len() as u64;
        inc.chunk = bytes.len() as u64;
        match &mut inc.sink {
            Sink::Bytes(b) => {
                b.extend_from_slice(bytes);
                if let Cow::Owned(own) = payload {
                    // Back to the decoder, for the next chunk.
                    self.disk.recycle(own);
                }
                inc.stored = inc.received;
                self.stored(sid, io);
            }
            Sink::File { .. } => {
                let (buf, from) = match payload {
                    Cow::Owned(own) => (own, 8),
                    Cow::Borrowed(p) => {
                        let mut buf = self.disk.buffer(p.len() - 8);
                        buf.extend_from_slice(&p[8..]);
                        (buf, 0)
                    }
                };
                self.disk.write(sid, buf, from);
                // All in: the writer may finish the file once it has written it.
                self.try_finish(sid, io);
                // Without a thread the write is done already.
                self.disk_done(io);
            }
        }
    }

    pub fn on_data_end(&mut self, sid: u64, hash: String, io: &mut Io<'_>) {
        if let Some(inc) = self.inc.get_mut(&sid) {
            inc.expected = Some(hash);
            self.try_finish(sid, io);
            self.disk_done(io);
        }
    }

    /// Takes what the disk writer has finished: stored chunks are acknowledged, finished files
    /// delivered, failed ones answered.
    /// Hands the decoder chunk buffers the disk writer gave back, for it to read the next
    /// chunks into.
    pub fn lend_buffers(&mut self, dec: &mut Decoder) {
        while dec.wants_buffers() {
            match self.disk.spare_buffer() {
                Some(buf) => dec.give_back(buf),
                None => break,
            }
        }
    }

    pub fn disk_done(&mut self, io: &mut Io<'_>) {
        self.disk.done(&mut self.done);
        let mut done = std::mem::take(&mut self.done);
        for d in done.drain(..) {
            match d {
                Done::Stored { sid, len, buf } => {
                    self.disk.recycle(buf);
                    if let Some(inc) = self.inc.get_mut(&sid) {
                        inc.stored += len;
                        self.stored(sid, io);
                    }
                }
                Done::Published { sid, path } => {
                    let Some(inc) = self.inc.remove(&sid) else {
                        continue;
                    };
                    let Sink::File { name, .. } = inc.sink else {
                        continue;
                    };
                    io.emit(Event::NotifyFileData {
                        from: inc.from,
                        path: path.to_string_lossy().into_owned(),
                        name,
                    });
                    io.send(&ClientMsg::Fin {
                        sid,
                        code: CRVIDEOSDK_NOERR,
                    });
                    if inc.cancelled {
                        cancel_ack(sid, CRVIDEOSDK_TRANSID_INVALID, io);
                    }
                }
                Done::Failed { sid } => {
                    if let Some(inc) = self.inc.remove(&sid) {
                        // The part file goes before the sender hears 1402: a failed file
                        // leaves nothing behind (the writer has closed it).
                        if let Sink::File { part, .. } = &inc.sink {
                            let _ = std::fs::remove_file(part);
                        }
                        io.send(&ClientMsg::Fin {
                            sid,
                            code: CRVIDEOSDK_FILE_WRITE_ERR,
                        });
                        if inc.cancelled {
                            cancel_ack(sid, CRVIDEOSDK_TRANSID_INVALID, io);
                        }
                    }
                }
            }
        }
        self.done = done;
    }

    /// More of `sid` is stored: acknowledged once [`xfer::ACK_CHUNKS`] chunks of the last
    /// one's size or [`xfer::ACK_EVERY`] bytes are unacknowledged, whichever is fewer, and at
    /// the end.
    fn stored(&mut self, sid: u64, io: &mut Io<'_>) {
        let Some(inc) = self.inc.get_mut(&sid) else {
            return;
        };
        let step = xfer::ACK_EVERY.min(xfer::ACK_CHUNKS * inc.chunk.max(1));
        if inc.stored - inc.acked >= step || (inc.stored == inc.size && inc.acked < inc.size) {
            inc.acked = inc.stored;
            io.send(&ClientMsg::Ack {
                sid,
                bytes: inc.stored,
            });
        }
        self.try_finish(sid, io);
    }

    /// Once every byte and the checksum are in: a buffer is delivered, a file handed to the
    /// disk writer to sync and name (delivered when it has, [`Receiving::disk_done`]).
    fn try_finish(&mut self, sid: u64, io: &mut Io<'_>) {
        match self.inc.get(&sid) {
            Some(inc) if inc.received == inc.size && inc.expected.is_some() && !inc.finishing => {}
            _ => return,
        }
        let inc = self.inc.get_mut(&sid).expect("present");
        if inc.expected.as_deref() != Some(&checksum_hex(inc.hasher.digest128())) {
            let inc = self.inc.remove(&sid).expect("present");
            self.discard(sid, inc);
            return io.send(&ClientMsg::Fin {
                sid,
                code: CRVIDEOSDK_SENDFILE_FILEINERROR,
            });
        }
        match &inc.sink {
            Sink::Bytes(_) => {
                let inc = self.inc.remove(&sid).expect("present");
                let Sink::Bytes(data) = inc.sink else {
                    unreachable!("matched above")
                };
                io.emit(Event::NotifyBufferData {
                    from: inc.from,
                    data,
                });
                io.send(&ClientMsg::Fin {
                    sid,
                    code: CRVIDEOSDK_NOERR,
                });
            }
            Sink::File { part, name } => {
                inc.finishing = true;
                let (part, name) = (part.clone(), name.clone());
                let dir = io.opts.download_dir.clone();
                self.disk.finish(sid, part, dir, name);
            }
        }
    }

    /// The sender cancelled (or went away): discard, tell the app, answer the server. A file
    /// already being finished is not cancelled: it is delivered, then the cancel answered as
    /// too late, as had it been delivered before the cancel came.
    pub fn on_cancelled(&mut self, sid: u64, io: &mut Io<'_>) {
        if let Some(inc) = self.inc.get_mut(&sid).filter(|inc| inc.finishing) {
            inc.cancelled = true;
            return;
        }
        let code = match self.inc.remove(&sid) {
            Some(inc) => {
                io.emit(Event::NotifyCancelSend {
                    task_id: inc.task.clone(),
                });
                self.discard(sid, inc);
                CRVIDEOSDK_NOERR
            }
            // Already delivered (or failed and answered): nothing to cancel.
            None => CRVIDEOSDK_TRANSID_INVALID,
        };
        cancel_ack(sid, code, io);
    }

    /// The session ended: every incoming stream is discarded. (A file the writer is already
    /// finishing is complete and checked; it keeps its name, unannounced.)
    pub fn end_all(&mut self) {
        for (sid, inc) in std::mem::take(&mut self.inc) {
            if !inc.finishing {
                self.discard(sid, inc);
            }
        }
    }

    /// Deletes what was stored of `sid` so far. The name goes at once, so that the part file
    /// is gone by the time the app hears of the cancel; the writer closes the file (and drops
    /// what it still had to write).
    fn discard(&mut self, sid: u64, inc: Incoming) {
        if let Sink::File { part, .. } = inc.sink {
            let _ = std::fs::remove_file(part);
            self.disk.discard(sid);
        }
    }
}

fn cancel_ack(sid: u64, code: i32, io: &mut Io<'_>) {
    io.send(&ClientMsg::CancelAck { sid, code });
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

#[cfg(test)]
mod tests {
    use super::super::disk::publish;
    use super::*;
    use std::io::Write;

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
