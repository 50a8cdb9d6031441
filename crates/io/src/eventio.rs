//! EventIO framing: the container format of sim_telarray and CORSIKA-IACT files.
//!
//! This module owns the bytes-to-objects layer and nothing about what objects mean (that is
//! [`super::simtel`]):
//!
//! * **Compression** is recognised by its magic bytes (gzip `1f 8b`, zstd `28 b5 2f fd`,
//!   otherwise raw) and undone while streaming, so a file is read front to back once and memory
//!   is bounded by the largest object.
//! * **Top-level objects** start with the sync marker `37 8a 1f d4` and a 12-byte header
//!   (type word: type, user bit, extended bit, 12-bit version; the id; the length word: 30-bit
//!   length and the "only sub-objects" bit), plus 4 bytes when extended. Sub-objects have the
//!   same header without the marker ([`ObjectHeader::parse_sub`]). Big-endian files (marker
//!   `d4 1f 8a 37`) are refused by name.
//! * **Primitives** ([`Cursor`]): little-endian integers and floats, strings with an i16 length,
//!   the EventIO var-int (a UTF-8-like prefix code of 1–9 bytes, signed values zig-zag coded).
//!
//! Every read is bounds-checked: a truncated stream, a length that overruns its parent or the
//! file, or a marker in the wrong place is an error with the file, the byte offset in the
//! decompressed stream and what was expected. No input can panic the reader or make it loop.
use sst1mflow_base::error::{Error, Result};
use std::io::Read;
use std::path::Path;

pub const SYNC_MARKER: [u8; 4] = [0x37, 0x8a, 0x1f, 0xd4];
const SYNC_MARKER_BIG_ENDIAN: [u8; 4] = [0xd4, 0x1f, 0x8a, 0x37];

/// Largest object we accept (sim_telarray objects are at most a few MB; this bounds memory on
/// a corrupt length field).
pub const MAX_OBJECT_BYTES: u64 = 1 << 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectHeader {
    pub type_: u32,
    pub version: u32,
    pub user: bool,
    pub id: i32,
    pub only_subobjects: bool,
    /// Bytes of content after the header.
    pub length: u64,
    /// Bytes of the header itself (12 or 16, without the sync marker).
    pub header_len: usize,
}

impl ObjectHeader {
    /// Parses a header (without sync marker) at the start of `b`; `None` if `b` is too short.
    pub fn parse_sub(b: &[u8]) -> Option<ObjectHeader> {
        let word = |i: usize| b.get(4 * i..4 * i + 4).map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")));
        let type_word = word(0)?;
        let id = word(1)? as i32;
        let length_word = word(2)?;
        let extended = type_word & (1 << 17) != 0;
        let mut length = (length_word & 0x3fff_ffff) as u64;
        let mut header_len = 12;
        if extended {
            let ext = word(3)?;
            length += ((ext & 0xfff) as u64) << 30;
            header_len = 16;
        }
        Some(ObjectHeader {
            type_: type_word & 0xffff,
            version: (type_word >> 20) & 0xfff,
            user: type_word & (1 << 16) != 0,
            id,
            only_subobjects: length_word & (1 << 30) != 0,
            length,
            header_len,
        })
    }
}

/// A top-level object: its header, its content and where it started in the decompressed stream.
pub struct Object {
    pub header: ObjectHeader,
    pub offset: u64,
    pub data: Vec<u8>,
}

impl Object {
    /// Byte offset of the content in the decompressed stream.
    pub fn content_offset(&self) -> u64 {
        self.offset + 4 + self.header.header_len as u64
    }
}

/// Which compression a file uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Streams the top-level objects of an EventIO file.
pub struct EventIoReader {
    what: String,
    input: Box<dyn Read + Send>,
    pub compression: Compression,
    /// Bytes consumed from the decompressed stream.
    pub offset: u64,
}

impl EventIoReader {
    pub fn open(path: &Path) -> Result<EventIoReader> {
        let what = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| Error::io(format!("cannot open {what}"), e))?;
        EventIoReader::from_reader(path, Box::new(std::io::BufReader::with_capacity(1 << 20, file)))
    }

    /// Reads EventIO bytes held in memory; `name` stands for the file in messages.
    pub fn from_bytes(name: &Path, bytes: Vec<u8>) -> Result<EventIoReader> {
        EventIoReader::from_reader(name, Box::new(std::io::Cursor::new(bytes)))
    }

    fn from_reader(path: &Path, mut file: Box<dyn Read + Send>) -> Result<EventIoReader> {
        let what = path.display().to_string();
        let mut magic = [0u8; 4];
        let n = read_up_to(&mut file, &mut magic).map_err(|e| Error::io(format!("cannot read {what}"), e))?;
        let head = std::io::Cursor::new(magic[..n].to_vec());
        let chained = head.chain(file);
        let (input, compression): (Box<dyn Read + Send>, Compression) = match magic[..n] {
            [0x1f, 0x8b, ..] => (Box::new(flate2::read::MultiGzDecoder::new(chained)), Compression::Gzip),
            [0x28, 0xb5, 0x2f, 0xfd] => {
                let d = ruzstd::decoding::StreamingDecoder::new(chained)
                    .map_err(|e| Error::msg(format!("{what}: not a valid zstd stream: {e}")))?;
                (Box::new(std::io::BufReader::with_capacity(1 << 20, d)), Compression::Zstd)
            }
            _ => (Box::new(chained), Compression::None),
        };
        Ok(EventIoReader { what, input, compression, offset: 0 })
    }

    fn where_(&self, at: u64) -> String {
        match self.compression {
            Compression::None => format!("{} at byte {at}", self.what),
            _ => format!("{} at byte {at} of the decompressed stream", self.what),
        }
    }

    /// The next top-level object, or `None` at a clean end of file.
    pub fn next_object(&mut self) -> Result<Option<Object>> {
        let start = self.offset;
        let mut head = [0u8; 16];
        let n = self.read_some(&mut head[..4])?;
        if n == 0 {
            return Ok(None);
        }
        if n < 4 {
            return Err(Error::msg(format!(
                "{}: the file ends inside an object marker (truncated)",
                self.where_(start)
            )));
        }
        if head[..4] == SYNC_MARKER_BIG_ENDIAN {
            return Err(Error::msg(format!(
                "{}: big-endian EventIO is not supported (sync marker d4 1f 8a 37)",
                self.where_(start)
            )));
        }
        if head[..4] != SYNC_MARKER {
            return Err(Error::msg(format!(
                "{}: expected the EventIO sync marker 37 8a 1f d4, found {:02x} {:02x} {:02x} {:02x}{}",
                self.where_(start),
                head[0],
                head[1],
                head[2],
                head[3],
                if start == 0 {
                    " (not an EventIO / sim_telarray file)"
                } else {
                    " (corrupt or truncated object before it)"
                }
            )));
        }
        self.read_full(&mut head[4..16], start, "an object header")?;
        let type_word = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
        let header = if type_word & (1 << 17) != 0 {
            // Extended header: one more word holds the high bits of the length.
            let mut both = [0u8; 16];
            both[..12].copy_from_slice(&head[4..16]);
            self.read_full(&mut both[12..], start, "an extended object header")?;
            ObjectHeader::parse_sub(&both).expect("16 bytes")
        } else {
            ObjectHeader::parse_sub(&head[4..16]).expect("12 bytes, not extended")
        };
        if header.length > MAX_OBJECT_BYTES {
            return Err(Error::msg(format!(
                "{}: object type {} announces {} bytes, more than the {} accepted (corrupt header?)",
                self.where_(start),
                header.type_,
                header.length,
                MAX_OBJECT_BYTES
            )));
        }
        let mut data = vec![0u8; header.length as usize];
        self.read_full(&mut data, start, &format!("the {} bytes of object type {}", header.length, header.type_))?;
        Ok(Some(Object { header, offset: start, data }))
    }

    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize> {
        let n = read_up_to(&mut self.input, buf)
            .map_err(|e| Error::msg(format!("{}: cannot decompress or read: {e}", self.where_(self.offset))))?;
        self.offset += n as u64;
        Ok(n)
    }

    fn read_full(&mut self, buf: &mut [u8], object_start: u64, what: &str) -> Result<()> {
        let n = self.read_some(buf)?;
        if n < buf.len() {
            return Err(Error::msg(format!(
                "{}: the file ends after {n} of {} bytes of {what} (object starting at byte {object_start}; truncated)",
                self.where_(self.offset),
                buf.len()
            )));
        }
        Ok(())
    }

    pub fn description(&self) -> &str {
        &self.what
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Iterates the sub-objects packed in `data` (content of an "only sub-objects" object).
/// `base` is the offset of `data` in the stream, for error messages.
pub fn sub_objects(data: &[u8], base: u64) -> SubObjects<'_> {
    SubObjects { data, pos: 0, base }
}

pub struct SubObjects<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
}

/// A sub-object: its header, content and the stream offset of the content.
pub struct Sub<'a> {
    pub header: ObjectHeader,
    pub data: &'a [u8],
    pub offset: u64,
}

impl<'a> Iterator for SubObjects<'a> {
    type Item = std::result::Result<Sub<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.data.len() {
            return None;
        }
        let rest = &self.data[self.pos..];
        let at = self.base + self.pos as u64;
        let Some(header) = ObjectHeader::parse_sub(rest) else {
            self.pos = self.data.len();
            return Some(Err(format!("byte {at}: {} bytes left, too few for a sub-object header", rest.len())));
        };
        let end = header.header_len as u64 + header.length;
        if end > rest.len() as u64 {
            self.pos = self.data.len();
            return Some(Err(format!(
                "byte {at}: sub-object type {} announces {} bytes, its parent has {} left",
                header.type_,
                header.length,
                rest.len() - header.header_len.min(rest.len())
            )));
        }
        let data = &rest[header.header_len..end as usize];
        self.pos += end as usize;
        Some(Ok(Sub { header, data, offset: at + header.header_len as u64 }))
    }
}

/// Bounds-checked little-endian reading of an object's content.
pub struct Cursor<'a> {
    data: &'a [u8],
    pub pos: usize,
}

pub type ParseResult<T> = std::result::Result<T, String>;

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Cursor<'a> {
        Cursor { data, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn bytes(&mut self, n: usize) -> ParseResult<&'a [u8]> {
        if n > self.remaining() {
            return Err(format!(
                "content ends at byte {} of {}, {n} more bytes needed at byte {}",
                self.data.len(),
                self.data.len(),
                self.pos
            ));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn skip(&mut self, n: usize) -> ParseResult<()> {
        self.bytes(n).map(|_| ())
    }

    pub fn u8(&mut self) -> ParseResult<u8> {
        Ok(self.bytes(1)?[0])
    }

    pub fn i16(&mut self) -> ParseResult<i16> {
        Ok(i16::from_le_bytes(self.bytes(2)?.try_into().expect("2 bytes")))
    }

    pub fn u16(&mut self) -> ParseResult<u16> {
        Ok(u16::from_le_bytes(self.bytes(2)?.try_into().expect("2 bytes")))
    }

    pub fn i32(&mut self) -> ParseResult<i32> {
        Ok(i32::from_le_bytes(self.bytes(4)?.try_into().expect("4 bytes")))
    }

    pub fn f32(&mut self) -> ParseResult<f32> {
        Ok(f32::from_le_bytes(self.bytes(4)?.try_into().expect("4 bytes")))
    }

    /// A count read from the file, checked against what the remaining bytes can hold
    /// (`min_bytes_each` per item), so a corrupt count cannot trigger a huge allocation.
    pub fn count(&mut self, n: i64, min_bytes_each: usize, what: &str) -> ParseResult<usize> {
        if n < 0 || (n as u64).saturating_mul(min_bytes_each as u64) > self.remaining() as u64 {
            return Err(format!("{what} = {n} does not fit in the {} bytes left", self.remaining()));
        }
        Ok(n as usize)
    }

    pub fn f32s(&mut self, n: usize) -> ParseResult<Vec<f32>> {
        let b = self.bytes(n.checked_mul(4).ok_or("array size overflow")?)?;
        Ok(b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
    }

    pub fn i16s(&mut self, n: usize) -> ParseResult<Vec<i16>> {
        let b = self.bytes(n.checked_mul(2).ok_or("array size overflow")?)?;
        Ok(b.chunks_exact(2).map(|c| i16::from_le_bytes(c.try_into().expect("2 bytes"))).collect())
    }

    /// A string with an i16 length.
    pub fn string(&mut self) -> ParseResult<String> {
        let n = self.i16()?;
        if n < 0 {
            return Err(format!("negative string length {n}"));
        }
        Ok(String::from_utf8_lossy(self.bytes(n as usize)?).into_owned())
    }

    /// An unsigned EventIO var-int.
    pub fn uvarint(&mut self) -> ParseResult<u64> {
        let first =
            *self.data.get(self.pos).ok_or_else(|| format!("content ends at byte {} inside a var-int", self.pos))?;
        let b = self.bytes(varint_len(first))?;
        Ok(varint_value(b))
    }

    /// A signed (zig-zag) EventIO var-int.
    pub fn svarint(&mut self) -> ParseResult<i64> {
        Ok(zigzag(self.uvarint()?))
    }
}

/// Bytes of the var-int starting with `first`: the number of leading 1 bits + 1 (at most 9).
#[inline]
fn varint_len(first: u8) -> usize {
    (first.leading_ones() as usize + 1).min(9)
}

/// The value of a complete var-int (`b` has [`varint_len`] bytes): the first byte's bits after
/// its length prefix (none for 8 and 9 bytes), then the following bytes, big-endian.
#[inline]
fn varint_value(b: &[u8]) -> u64 {
    let len = b.len();
    let mut v: u64 = if len >= 8 { 0 } else { (b[0] & (0xffu16 >> len) as u8) as u64 };
    for &x in &b[1..] {
        v = (v << 8) | x as u64;
    }
    v
}

#[inline]
pub fn zigzag(v: u64) -> i64 {
    if v & 1 == 1 {
        -((v >> 1) as i64) - 1
    } else {
        (v >> 1) as i64
    }
}

/// Decodes `n_traces` traces of `n_samples` differential signed var-ints each (sim_telarray
/// ADC samples) into `out` (appended), the running value restarting at 0 for every trace.
/// Returns the bytes consumed.
pub fn differential_traces(data: &[u8], n_traces: usize, n_samples: usize, out: &mut Vec<u16>) -> ParseResult<usize> {
    let mut pos = 0usize;
    out.reserve(n_traces * n_samples);
    for _ in 0..n_traces {
        let mut value: i64 = 0;
        for _ in 0..n_samples {
            let first = *data.get(pos).ok_or_else(|| format!("ADC samples end at byte {pos} (truncated)"))?;
            let v = if first & 0x80 == 0 {
                pos += 1;
                first as u64
            } else {
                let len = varint_len(first);
                let b = data
                    .get(pos..pos + len)
                    .ok_or_else(|| format!("ADC samples end at byte {pos} inside a var-int"))?;
                pos += len;
                varint_value(b)
            };
            value = value.wrapping_add(zigzag(v));
            out.push(value as u16);
        }
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_follow_the_prefix_code() {
        // 1 byte: 0x05; 2 bytes: 10xxxxxx; 3 bytes: 110xxxxx.
        let mut c = Cursor::new(&[0x05, 0x81, 0x02, 0xc1, 0x00, 0x03]);
        assert_eq!(c.uvarint().unwrap(), 5);
        assert_eq!(c.uvarint().unwrap(), (1 << 8) | 2);
        assert_eq!(c.uvarint().unwrap(), (1 << 16) | 3);
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(1), -1);
        assert_eq!(zigzag(4), 2);
        let mut out = Vec::new();
        // Trace of 3 samples: +10, -1, +2 → 10, 9, 11.
        let used = differential_traces(&[20, 1, 4], 1, 3, &mut out).unwrap();
        assert_eq!((used, out), (3, vec![10, 9, 11]));
        assert!(differential_traces(&[20, 0x81], 1, 3, &mut Vec::new()).is_err());
    }

    #[test]
    fn extended_headers_are_read_and_truncated_ones_refused() {
        // Found by fuzzing: an extended header cut after its first 12 bytes once panicked.
        let mut bytes = SYNC_MARKER.to_vec();
        bytes.extend_from_slice(&(2000u32 | 1 << 17).to_le_bytes());
        bytes.extend_from_slice(&7i32.to_le_bytes());
        bytes.extend_from_slice(&3u32.to_le_bytes());
        let mut r = EventIoReader::from_bytes(Path::new("cut.simtel"), bytes.clone()).unwrap();
        let err = r.next_object().err().unwrap().to_string();
        assert!(err.contains("cut.simtel") && err.contains("extended object header"), "{err}");
        // Complete: the extension word adds to the length (here 0), then 3 content bytes.
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&[1, 2, 3]);
        let mut r = EventIoReader::from_bytes(Path::new("ok.simtel"), bytes).unwrap();
        let o = r.next_object().unwrap().unwrap();
        assert_eq!(
            (o.header.type_, o.header.id, o.header.header_len, o.data.as_slice()),
            (2000, 7, 16, &[1u8, 2, 3][..])
        );
        assert!(r.next_object().unwrap().is_none());
    }
}
