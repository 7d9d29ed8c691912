//! crvm's wire protocol on a tokio socket, for the bench's protocol-level clients (presence
//! subscribers and changers, scale sessions): `crvm_proto::raw::Codec` does the framing and
//! the messages, this only moves the bytes.

use crvm_proto::raw::{login_op, Codec, Incoming};
use crvm_proto::{ClientMsg, Kind, Op, ServerMsg, PROTOCOL_VERSION};
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One protocol connection: hello, login, requests; answers pings while reading.
pub struct Conn {
    stream: TcpStream,
    pub codec: Codec,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            codec: Codec::new(),
        }
    }

    /// The socket and the codec, for a writer and a reader that go separate ways.
    pub fn into_parts(self) -> (TcpStream, Codec) {
        (self.stream, self.codec)
    }

    /// Writes bytes made by [`Conn::codec`] (several frames at once, for pipelining).
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Sends request `op` under a fresh ID; returns the ID.
    pub async fn request(&mut self, op: Op) -> io::Result<u64> {
        let (id, bytes) = self.codec.request(op);
        self.write(&bytes).await?;
        Ok(id)
    }

    /// The next control message; answers pings on the way.
    pub async fn msg(&mut self) -> io::Result<ServerMsg> {
        loop {
            match self.codec.next_incoming().map_err(io_err)? {
                Some(Incoming::Msg(m, _)) => return Ok(m),
                Some(Incoming::Ping) => {
                    let pong = self.codec.frame(Kind::Pong, &[]);
                    self.write(&pong).await?;
                }
                Some(_) => {}
                None => {
                    let n = self.stream.read(self.codec.spare()).await?;
                    if n == 0 {
                        return Err(io_err("crvm-server closed the connection"));
                    }
                    self.codec.filled(n);
                }
            }
        }
    }

    /// The next message that is not a presence push.
    pub async fn reply(&mut self) -> io::Result<ServerMsg> {
        loop {
            match self.msg().await? {
                ServerMsg::UserStatus(_) => {}
                m => return Ok(m),
            }
        }
    }

    /// Says hello and logs in as `user` of tenant `app` (both in one write).
    pub async fn login(&mut self, app: &str, secret: &str, user: &str) -> io::Result<()> {
        let hello = ClientMsg::Hello {
            ver: PROTOCOL_VERSION,
            agent: "crvm-bench".into(),
        };
        let mut bytes = self.codec.msg(&hello, &[]);
        bytes.extend(self.codec.request(login_op(app, secret, user, "")).1);
        self.write(&bytes).await?;
        match self.reply().await? {
            ServerMsg::Welcome { .. } => {}
            m => return Err(io_err(format!("{user}: expected welcome, got {m:?}"))),
        }
        match self.reply().await? {
            ServerMsg::Res {
                result: crvm_proto::Outcome::Login { .. },
                ..
            } => Ok(()),
            m => Err(io_err(format!("login of {user}: {m:?}"))),
        }
    }

    /// Sends request `op` and waits for its reply, which must be a success.
    pub async fn request_ok(&mut self, op: Op) -> io::Result<()> {
        let id = self.request(op).await?;
        match self.reply().await? {
            ServerMsg::Res {
                re,
                result: crvm_proto::Outcome::Ok,
            } if re == id => Ok(()),
            m => Err(io_err(format!("request {id}: {m:?}"))),
        }
    }
}
