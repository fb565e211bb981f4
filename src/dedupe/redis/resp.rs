//! RESP2, the little of it the dedupe store speaks: commands encoded into one write, replies
//! taken off the front of the read buffer as they complete.

use bytes::{Buf, Bytes, BytesMut};

use super::RedisError;

/// Replies are a few bytes; anything far bigger is not an answer to our commands.
const MAX_BULK: usize = 1 << 20;
const MAX_ARRAY: usize = 1 << 16;
const MAX_LINE: usize = 64 * 1024;

/// One RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    /// `None`: the nil bulk string (`SET … NX` on a key that exists).
    Bulk(Option<Bytes>),
    Array(Option<Vec<Reply>>),
}

/// Commands encoded for one write, and how many replies they get.
#[derive(Debug, Default)]
pub struct Pipeline {
    pub(super) buf: BytesMut,
    pub(super) count: usize,
}

impl Pipeline {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one command (its name and arguments, as RESP bulk strings).
    pub fn cmd(&mut self, args: &[&[u8]]) -> &mut Self {
        use std::fmt::Write;
        let _ = write!(Buffer(&mut self.buf), "*{}\r\n", args.len());
        for arg in args {
            let _ = write!(Buffer(&mut self.buf), "${}\r\n", arg.len());
            self.buf.extend_from_slice(arg);
            self.buf.extend_from_slice(b"\r\n");
        }
        self.count += 1;
        self
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// `fmt::Write` into a `BytesMut`, for the RESP headers.
struct Buffer<'a>(&'a mut BytesMut);

impl std::fmt::Write for Buffer<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Takes one complete reply off the front of `buf`; `Ok(None)` when more bytes are needed.
pub fn parse(buf: &mut BytesMut) -> Result<Option<Reply>, RedisError> {
    let mut pos = 0;
    let reply = parse_at(buf, &mut pos, 0)?;
    if reply.is_some() {
        buf.advance(pos);
    }
    Ok(reply)
}

fn parse_at(b: &[u8], pos: &mut usize, depth: usize) -> Result<Option<Reply>, RedisError> {
    let protocol = |what: String| RedisError::Protocol(what);
    let Some(end) = memchr::memmem::find(&b[*pos..], b"\r\n") else {
        return if b.len() - *pos > MAX_LINE {
            Err(protocol("a line without an end".into()))
        } else {
            Ok(None)
        };
    };
    let line = &b[*pos..*pos + end];
    let Some((&kind, rest)) = line.split_first() else { return Err(protocol("an empty line".into())) };
    let text = std::str::from_utf8(rest).map_err(|_| protocol("a header that is not UTF-8".into()))?;
    let number = || text.parse::<i64>().map_err(|_| protocol(format!("`{text}` is not a number")));
    let after = *pos + end + 2;
    let reply = match kind {
        b'+' => Reply::Simple(text.to_owned()),
        b'-' => Reply::Error(text.to_owned()),
        b':' => Reply::Integer(number()?),
        b'$' => match number()? {
            -1 => Reply::Bulk(None),
            n if n < 0 || n as usize > MAX_BULK => {
                return Err(protocol(format!("a bulk string of {n} bytes")))
            }
            n => {
                let n = n as usize;
                if b.len() < after + n + 2 {
                    return Ok(None);
                }
                if &b[after + n..after + n + 2] != b"\r\n" {
                    return Err(protocol("a bulk string without its line end".into()));
                }
                *pos = after + n + 2;
                return Ok(Some(Reply::Bulk(Some(Bytes::copy_from_slice(&b[after..after + n])))));
            }
        },
        b'*' => match number()? {
            -1 => Reply::Array(None),
            n if n < 0 || n as usize > MAX_ARRAY || depth > 4 => {
                return Err(protocol(format!("an array of {n} elements at depth {depth}")))
            }
            n => {
                let mut at = after;
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    match parse_at(b, &mut at, depth + 1)? {
                        Some(item) => items.push(item),
                        None => return Ok(None),
                    }
                }
                *pos = at;
                return Ok(Some(Reply::Array(Some(items))));
            }
        },
        other => return Err(protocol(format!("unknown reply type {:?}", other as char))),
    };
    *pos = after;
    Ok(Some(reply))
}
