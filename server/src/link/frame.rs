//! The frames of a node link: `u32` length of the rest, a kind byte, the message, then its
//! attachment (a cmd's bytes, a data chunk).
//!
//! The messages of every cmd and data chunk (`cmd`, `cmd_done`, `data`) have a fixed binary
//! layout, integers big-endian and strings as a `u32` length and their UTF-8 bytes; every other
//! message is JSON (`u32` length, then the JSON of [`Msg`]).

use super::Msg;

const JSON: u8 = 0;
const CMD: u8 = 1;
const CMD_DONE: u8 = 2;
const DATA: u8 = 3;

/// The start of `msg`'s frame, before its attachment, with four bytes left at the front for
/// the frame's length (which counts the attachment).
pub fn head(msg: &Msg) -> Vec<u8> {
    let mut f = vec![0; 4];
    match msg {
        Msg::Cmd {
            from,
            tenant,
            user,
            to,
            n,
        } => {
            f.push(CMD);
            put_u64(&mut f, *from);
            put_u64(&mut f, *n);
            for s in [tenant, user, to] {
                put_str(&mut f, s);
            }
        }
        Msg::CmdDone { gen, ns, code } => {
            f.push(CMD_DONE);
            put_u64(&mut f, *gen);
            f.extend_from_slice(&code.to_be_bytes());
            f.extend_from_slice(&(ns.len() as u32).to_be_bytes());
            for n in ns {
                put_u64(&mut f, *n);
            }
        }
        Msg::Data { from, sid } => {
            f.push(DATA);
            put_u64(&mut f, *from);
            put_u64(&mut f, *sid);
        }
        _ => {
            f.extend_from_slice(&[JSON, 0, 0, 0, 0]);
            serde_json::to_writer(&mut f, msg).expect("link messages serialize");
            let json_len = (f.len() - 9) as u32;
            f[5..9].copy_from_slice(&json_len.to_be_bytes());
        }
    }
    f
}

fn put_u64(f: &mut Vec<u8>, v: u64) {
    f.extend_from_slice(&v.to_be_bytes());
}

fn put_str(f: &mut Vec<u8>, s: &str) {
    f.extend_from_slice(&(s.len() as u32).to_be_bytes());
    f.extend_from_slice(s.as_bytes());
}

/// A frame's attachment: the frame's bytes from `at` on.
pub struct Attachment {
    buf: Vec<u8>,
    at: usize,
}

impl Attachment {
    /// The attachment as a vector of its own.
    pub fn into_vec(self) -> Vec<u8> {
        if self.at == 0 {
            return self.buf;
        }
        self.buf[self.at..].to_vec()
    }
}

impl std::ops::Deref for Attachment {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[self.at..]
    }
}

/// Reads a frame's bytes (after its length) front to back.
struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.buf.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// The message and attachment of a frame's bytes (after its length); `None` if they are not a
/// well-formed frame.
pub fn decode(buf: Vec<u8>) -> Option<(Msg, Attachment)> {
    let mut c = Cursor { buf: &buf, at: 0 };
    let msg = match c.u8()? {
        CMD => {
            let from = c.u64()?;
            let n = c.u64()?;
            Msg::Cmd {
                from,
                n,
                tenant: c.str()?,
                user: c.str()?,
                to: c.str()?,
            }
        }
        CMD_DONE => {
            let gen = c.u64()?;
            let code = c.u32()? as i32;
            let count = c.u32()? as usize;
            // Every number takes eight bytes of the frame: the count cannot promise more.
            if count > (buf.len() - c.at) / 8 {
                return None;
            }
            let ns = (0..count).map(|_| c.u64()).collect::<Option<Vec<u64>>>()?;
            Msg::CmdDone { gen, ns, code }
        }
        DATA => Msg::Data {
            from: c.u64()?,
            sid: c.u64()?,
        },
        JSON => {
            let n = c.u32()? as usize;
            serde_json::from_slice(c.take(n)?).ok()?
        }
        _ => return None,
    };
    let at = c.at;
    Some((msg, Attachment { buf, at }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(msg: Msg, att: &[u8]) -> (Msg, Vec<u8>) {
        let mut f = head(&msg);
        f.extend_from_slice(att);
        let len = u32::from_be_bytes(f[..4].try_into().unwrap());
        assert_eq!(len, 0, "the length is the sender's to fill in");
        let (m, a) = decode(f.split_off(4)).expect("decodes");
        (m, a.into_vec())
    }

    #[test]
    fn every_kind_round_trips() {
        let (m, a) = round_trip(
            Msg::Cmd {
                from: 7,
                tenant: "t".into(),
                user: "alice".into(),
                to: "bob✓".into(),
                n: u64::MAX,
            },
            b"payload",
        );
        assert!(matches!(m, Msg::Cmd { from: 7, n: u64::MAX, ref tenant, ref user, ref to }
            if tenant == "t" && user == "alice" && to == "bob✓"));
        assert_eq!(a, b"payload");
        let (m, a) = round_trip(
            Msg::CmdDone {
                gen: 1 << 63,
                ns: vec![1, 2, 3],
                code: -5,
            },
            b"",
        );
        assert!(
            matches!(m, Msg::CmdDone { gen: g, ref ns, code: -5 } if g == 1 << 63 && ns == &[1, 2, 3])
        );
        assert!(a.is_empty());
        let (m, a) = round_trip(
            Msg::Data {
                from: 3,
                sid: 9,
            },
            &[0; 1000],
        );
        assert!(matches!(m, Msg::Data { from: 3, sid: 9 }));
        assert_eq!(a.len(), 1000);
        let (m, a) = round_trip(Msg::Ended { gen: 11 }, b"x");
        assert!(matches!(m, Msg::Ended { gen: 11 }));
        assert_eq!(a, b"x");
    }

    #[test]
    fn malformed_frames_are_refused() {
        let mut good = head(&Msg::Cmd {
            from: 1,
            tenant: "t".into(),
            user: "u".into(),
            to: "v".into(),
            n: 1,
        });
        good.drain(..4);
        // Every truncation of a frame without attachment is refused, never a panic.
        for cut in 0..good.len() {
            assert!(decode(good[..cut].to_vec()).is_none(), "cut at {cut}");
        }
        assert!(decode(vec![9, 0, 0]).is_none(), "unknown kind");
        // A string length beyond the frame, a count promising more than the frame holds.
        let mut long = vec![CMD];
        long.extend_from_slice(&[0; 16]);
        long.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(long).is_none());
        let mut many = vec![CMD_DONE];
        many.extend_from_slice(&[0; 12]);
        many.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(many).is_none());
        // Not UTF-8.
        let mut bad = vec![CMD];
        bad.extend_from_slice(&[0; 16]);
        bad.extend_from_slice(&1u32.to_be_bytes());
        bad.push(0xff);
        assert!(decode(bad).is_none());
        // JSON that is not a message.
        let mut json = vec![JSON];
        json.extend_from_slice(&2u32.to_be_bytes());
        json.extend_from_slice(b"{}");
        assert!(decode(json).is_none());
    }
}
