//! The receiving side's disk writer: one thread per client, started with its first incoming
//! file, that writes the chunks, starts their write-back, and syncs and names finished files.
//! The worker, which reads the socket — and with it every invite, hang-up and cmd — therefore
//! never waits for the disk (docs/API.md §3.5, "Signalling first on any link"): before, an invite sat
//! in the socket behind every chunk the worker had yet to write.
//!
//! The worker hands chunks over in order ([`Disk::write`]) and hears back through [`Disk::done`]
//! (and a wake-up) how much of each stream is stored. It acknowledges only stored bytes, so the
//! sender's flow-control window bounds the memory waiting here. Without a wake-up (a session
//! driven by its unit tests, with no worker) the jobs run at once, on the caller's thread.

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Wakes whoever drains [`Disk::done`] (the worker's poll loop).
pub(crate) type Wake = Arc<dyn Fn() + Send + Sync>;

/// How often a file being received has its write-back to disk started.
const WRITEBACK_EVERY: u64 = 8 << 20;
/// Chunk buffers kept for reuse: memory the process touches for the first time costs a page
/// fault per page, a tenth of the CPU of a transfer when every chunk had fresh memory.
const SPARE_BUFFERS: usize = 8;

enum Job {
    /// A part file, opened by the worker, to write stream `sid` into.
    Open { sid: u64, file: File },
    /// `bytes[from..]` (a chunk read into a buffer of its own starts with its stream ID).
    Write {
        sid: u64,
        bytes: Vec<u8>,
        from: usize,
    },
    /// Every byte is written: sync, then give the part file its final name in `dir`.
    Finish {
        sid: u64,
        part: PathBuf,
        dir: PathBuf,
        name: String,
    },
    /// Cancelled or failed (its part file already deleted): close it, write no more.
    Discard { sid: u64 },
}

/// What the writer finished, in order per stream.
pub(crate) enum Done {
    /// `len` more bytes of `sid` are written (the buffer comes back for reuse).
    Stored { sid: u64, len: u64, buf: Vec<u8> },
    /// `sid` is synced and named `path`.
    Published { sid: u64, path: PathBuf },
    /// Writing, syncing or naming `sid` failed; its part file is deleted. Nothing more of it
    /// follows.
    Failed { sid: u64 },
}

/// Completions waiting for the worker, shared with the thread.
type DoneQueue = Arc<Mutex<Vec<Done>>>;

/// Reports `d`, waking the worker if the queue was empty: it takes everything each time it
/// looks (under the same lock), so a queue that is not empty already has a wake-up coming.
fn report(done: &DoneQueue, wake: Option<&Wake>, d: Done) {
    let mut q = done.lock();
    let was_empty = q.is_empty();
    q.push(d);
    drop(q);
    if let (true, Some(wake)) = (was_empty, wake) {
        wake();
    }
}

/// The worker's handle on the writer.
#[derive(Default)]
pub(crate) struct Disk {
    wake: Option<Wake>,
    thread: Option<(Sender<Job>, JoinHandle<()>)>,
    done: DoneQueue,
    spare: Vec<Vec<u8>>,
    /// The files of jobs run at once (no thread).
    inline: Files,
}

impl Disk {
    /// Jobs go to a thread of their own, which calls `wake` when it has finished something.
    pub fn set_wake(&mut self, wake: Wake) {
        self.wake = Some(wake);
    }

    /// A buffer for the next chunk (a reused one if there is one).
    pub fn buffer(&mut self, len: usize) -> Vec<u8> {
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.reserve(len);
        buf
    }

    pub fn open(&mut self, sid: u64, file: File) {
        self.submit(Job::Open { sid, file });
    }

    /// Writes `bytes[from..]` to stream `sid`'s part file; `bytes` comes back with
    /// [`Done::Stored`].
    pub fn write(&mut self, sid: u64, bytes: Vec<u8>, from: usize) {
        self.submit(Job::Write { sid, bytes, from });
    }

    pub fn finish(&mut self, sid: u64, part: PathBuf, dir: PathBuf, name: String) {
        self.submit(Job::Finish {
            sid,
            part,
            dir,
            name,
        });
    }

    pub fn discard(&mut self, sid: u64) {
        self.submit(Job::Discard { sid });
    }

    /// What the writer has finished since the last call, in order.
    pub fn done(&mut self, into: &mut Vec<Done>) {
        into.append(&mut self.done.lock());
    }

    /// Keeps a chunk buffer back from the writer for the next chunk.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS {
            self.spare.push(buf);
        }
    }

    /// A buffer kept for the next chunk, if any (for the decoder to read one into).
    pub fn spare_buffer(&mut self) -> Option<Vec<u8>> {
        self.spare.pop()
    }

    fn submit(&mut self, job: Job) {
        let Some(wake) = &self.wake else {
            // No worker to wake: done at once.
            let done = &self.done;
            return self.inline.run(job, &|d| report(done, None, d));
        };
        if self.thread.is_none() {
            let (tx, rx) = crossbeam_channel::unbounded();
            let (done, wake) = (Arc::clone(&self.done), Arc::clone(wake));
            let spawned = std::thread::Builder::new()
                .name("crvm-disk".into())
                .spawn(move || writer(rx, done, wake));
            match spawned {
                Ok(handle) => self.thread = Some((tx, handle)),
                // No thread to be had: write on this one, as without a worker.
                Err(_) => self.wake = None,
            }
        }
        match &self.thread {
            Some((tx, _)) => {
                // The thread only ends once the sender is dropped, so the send cannot fail.
                let _ = tx.send(job);
            }
            None => self.submit(job),
        }
    }
}

impl Drop for Disk {
    /// Waits for the writer to finish what it was given (files closed, synced files named), so
    /// that nothing is left behind once the client is gone.
    fn drop(&mut self) {
        if let Some((tx, handle)) = self.thread.take() {
            drop(tx);
            let _ = handle.join();
        }
    }
}

/// How much the writer yields to the app's other threads (a nice value above the process's):
/// it only stores bytes, so when the CPUs are scarce the worker — which reads every invite,
/// hang-up and cmd — and the app come first; a file then arrives a little later, never a call.
const WRITER_NICENESS: i32 = 5;

/// The thread: runs jobs in order until the worker's side is dropped.
fn writer(rx: Receiver<Job>, done: DoneQueue, wake: Wake) {
    lower_priority();
    let mut files = Files::default();
    while let Ok(job) = rx.recv() {
        files.run(job, &|d| report(&done, Some(&wake), d));
    }
}

/// Lowers this thread's priority by [`WRITER_NICENESS`] (Linux gives each thread its own
/// nice value; elsewhere, and if refused, the thread keeps the process's).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on this thread's own ID; failure changes nothing.
    unsafe {
        let tid = libc::gettid();
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
        if *libc::__errno_location() == 0 {
            let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, now + WRITER_NICENESS);
        }
    }
}

/// The part files being written, by stream.
#[derive(Default)]
struct Files(HashMap<u64, Writing>);

struct Writing {
    file: File,
    written: u64,
    /// Bytes whose write-back to disk has been started ([`start_writeback`]).
    flushing: u64,
}

impl Files {
    fn run(&mut self, job: Job, report: &dyn Fn(Done)) {
        match job {
            Job::Open { sid, file } => {
                let w = Writing {
                    file,
                    written: 0,
                    flushing: 0,
                };
                self.0.insert(sid, w);
            }
            Job::Write { sid, bytes, from } => {
                let Some(w) = self.0.get_mut(&sid) else {
                    return; // failed or discarded: the rest of its chunks are dropped
                };
                let len = (bytes.len() - from) as u64;
                if w.file.write_all(&bytes[from..]).is_err() {
                    self.0.remove(&sid);
                    return report(Done::Failed { sid });
                }
                w.written += len;
                if w.written - w.flushing >= WRITEBACK_EVERY {
                    start_writeback(&w.file, w.flushing, w.written - w.flushing);
                    w.flushing = w.written;
                }
                report(Done::Stored {
                    sid,
                    len,
                    buf: bytes,
                });
            }
            Job::Finish {
                sid,
                part,
                dir,
                name,
            } => {
                let Some(w) = self.0.remove(&sid) else {
                    return;
                };
                let published = w.file.sync_all().and_then(|()| {
                    drop(w);
                    publish(&part, &dir, &name)
                });
                match published {
                    Ok(path) => report(Done::Published { sid, path }),
                    Err(_) => {
                        let _ = std::fs::remove_file(&part);
                        report(Done::Failed { sid });
                    }
                }
            }
            Job::Discard { sid } => {
                self.0.remove(&sid);
            }
        }
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` of `file` to disk, without waiting
/// for them. A received file is synced before it is reported; with its write-back started as
/// the data arrives, that final sync has little left to wait for, and a large file never piles
/// up as dirty memory.
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

/// Gives the finished part file its final name in `dir`: `name`, else `stem (1).ext`,
/// `stem (2).ext`, … — never replacing an existing file (a hard link fails if the name exists).
pub(super) fn publish(part: &Path, dir: &Path, name: &str) -> io::Result<PathBuf> {
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
    let candidate = dir.join(format!("{stem}-{}{ext}", crate::core::ids::new_id("")));
    std::fs::hard_link(part, &candidate)?;
    std::fs::remove_file(part)?;
    Ok(candidate)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// This thread's nice value.
    fn niceness() -> i32 {
        // SAFETY: a plain system call on this thread's own ID.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[test]
    fn the_writer_runs_below_the_threads_that_read_control() {
        let (before, after) = std::thread::spawn(|| {
            let before = niceness();
            lower_priority();
            (before, niceness())
        })
        .join()
        .expect("the thread ran");
        assert_eq!(after, (before + WRITER_NICENESS).min(19));
        // Only the writer's own thread: this one keeps its priority.
        assert_eq!(niceness(), before);
    }
}
