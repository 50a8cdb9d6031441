//! A small FITS writer: a primary HDU and binary tables (`BINTABLE`), enough for GADF IRFs and
//! DL3 event lists, written by us rather than through cfitsio so that the bytes are exactly
//! determined (no `DATE` or checksum cards unless we add them) and no C library is needed.
//!
//! FITS in one paragraph: a file is a sequence of HDUs, each a header of 80-character ASCII
//! cards (`KEYWORD = value / comment`) ending with `END`, padded with spaces to a multiple of
//! 2880 bytes, followed by big-endian data padded with zeros to a multiple of 2880 bytes. A
//! binary table describes its columns with `TTYPEn` (name), `TFORMn` (repeat count and type:
//! `E` float32, `D` float64, `J` int32, `K` int64, `A` characters), `TUNITn` and, for arrays,
//! `TDIMn` (axes, fastest first). GADF's IRFs are one-row tables whose cells are such arrays.
use sst1mflow_base::error::{Error, Result};
use std::io::Write;

const BLOCK: usize = 2880;

/// A header value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// One header card.
#[derive(Clone, Debug, PartialEq)]
pub struct Card {
    pub key: String,
    pub value: Value,
    pub comment: String,
}

impl Card {
    pub fn new(key: &str, value: Value, comment: &str) -> Card {
        Card { key: key.into(), value, comment: comment.into() }
    }
}

/// Column data, one `repeat`-long cell per row, rows concatenated.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    /// Fixed-width strings (space-padded), one per row.
    Str {
        width: usize,
        values: Vec<String>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub unit: String,
    /// `TDIMn`, axes fastest first, for array cells.
    pub dims: Option<Vec<usize>>,
    pub data: ColumnData,
}

impl Column {
    pub fn new(name: &str, unit: &str, data: ColumnData) -> Column {
        Column { name: name.into(), unit: unit.into(), dims: None, data }
    }

    /// A one-row array column with `TDIM` (fastest axis first).
    pub fn array(name: &str, unit: &str, dims: &[usize], data: ColumnData) -> Column {
        Column { name: name.into(), unit: unit.into(), dims: Some(dims.to_vec()), data }
    }

    fn values(&self) -> usize {
        match &self.data {
            ColumnData::F32(v) => v.len(),
            ColumnData::F64(v) => v.len(),
            ColumnData::I32(v) => v.len(),
            ColumnData::I64(v) => v.len(),
            ColumnData::Str { values, .. } => values.len(),
        }
    }

    fn type_code(&self) -> (char, usize) {
        match &self.data {
            ColumnData::F32(_) => ('E', 4),
            ColumnData::F64(_) => ('D', 8),
            ColumnData::I32(_) => ('J', 4),
            ColumnData::I64(_) => ('K', 8),
            ColumnData::Str { width, .. } => ('A', *width),
        }
    }
}

/// A binary table HDU.
#[derive(Clone, Debug, PartialEq)]
pub struct BinTable {
    pub extname: String,
    pub n_rows: usize,
    pub columns: Vec<Column>,
    /// Cards after the structural ones (HDUCLASn, provenance, …).
    pub cards: Vec<Card>,
}

fn format_value(v: &Value) -> String {
    match v {
        Value::Str(s) => {
            let quoted = format!("'{:<8}'", s.replace('\'', "''"));
            format!("{quoted:<20}")
        }
        Value::Int(i) => format!("{i:>20}"),
        Value::Bool(b) => format!("{:>20}", if *b { "T" } else { "F" }),
        Value::Float(f) => {
            let s = if f.is_finite() { format!("{f:?}").to_uppercase() } else { "0.0".to_string() };
            format!("{s:>20}")
        }
    }
}

/// The 80-character cards of one header entry: one card, or for strings longer than fit, the
/// FITS long-string convention (`'…&'` continued on `CONTINUE` cards), which astropy reads.
fn card_text(card: &Card) -> Result<String> {
    if card.key.len() > 8
        || !card.key.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(Error::msg(format!("FITS keyword {:?} is not a valid keyword", card.key)));
    }
    if let Value::Str(s) = &card.value {
        if !s.is_ascii() || !card.comment.is_ascii() {
            return Err(Error::msg(format!("FITS card {} is not ASCII", card.key)));
        }
        let escaped = s.replace('\'', "''");
        if escaped.len() > 68 {
            return long_string(&card.key, &escaped);
        }
    }
    let mut text = format!("{:<8}= {}", card.key, format_value(&card.value));
    if !card.comment.is_empty() {
        text.push_str(" / ");
        text.push_str(&card.comment);
    }
    if !text.is_ascii() {
        return Err(Error::msg(format!("FITS card {} is not ASCII", card.key)));
    }
    text.truncate(80); // only a comment can reach past column 80
    Ok(format!("{text:<80}"))
}

/// `escaped` (quotes already doubled) over a first card and `CONTINUE` cards, each piece ending
/// in `&` but the last; a doubled quote is never split.
fn long_string(key: &str, escaped: &str) -> Result<String> {
    let mut pieces = Vec::new();
    let mut rest = escaped;
    while !rest.is_empty() {
        let mut take = rest.len().min(66);
        while take < rest.len() && rest[..take].matches('\'').count() % 2 == 1 {
            take -= 1;
        }
        pieces.push(&rest[..take]);
        rest = &rest[take..];
    }
    let mut out = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        let amp = if i + 1 < pieces.len() { "&" } else { "" };
        let text = if i == 0 { format!("{key:<8}= '{piece}{amp}'") } else { format!("CONTINUE  '{piece}{amp}'") };
        out.push_str(&format!("{text:<80}"));
    }
    Ok(out)
}

pub(crate) fn header_bytes(cards: &[Card]) -> Result<Vec<u8>> {
    let mut out = String::new();
    for c in cards {
        out.push_str(&card_text(c)?);
    }
    out.push_str(&format!("{:<80}", "END"));
    let mut bytes = out.into_bytes();
    bytes.resize(bytes.len().div_ceil(BLOCK) * BLOCK, b' ');
    Ok(bytes)
}

pub(crate) fn primary_header(cards: &[Card]) -> Result<Vec<u8>> {
    let mut all = vec![
        Card::new("SIMPLE", Value::Bool(true), "conforms to FITS standard"),
        Card::new("BITPIX", Value::Int(8), ""),
        Card::new("NAXIS", Value::Int(0), ""),
        Card::new("EXTEND", Value::Bool(true), ""),
    ];
    all.extend_from_slice(cards);
    header_bytes(&all)
}

impl BinTable {
    fn bytes(&self) -> Result<Vec<u8>> {
        let mut row_bytes = 0;
        let mut cards = vec![
            Card::new("XTENSION", Value::Str("BINTABLE".into()), "binary table extension"),
            Card::new("BITPIX", Value::Int(8), ""),
            Card::new("NAXIS", Value::Int(2), ""),
            Card::new("NAXIS1", Value::Int(0), "bytes per row"),
            Card::new("NAXIS2", Value::Int(self.n_rows as i64), "rows"),
            Card::new("PCOUNT", Value::Int(0), ""),
            Card::new("GCOUNT", Value::Int(1), ""),
            Card::new("TFIELDS", Value::Int(self.columns.len() as i64), ""),
        ];
        let mut repeats = Vec::new();
        for (i, c) in self.columns.iter().enumerate() {
            let n = i + 1;
            let (code, size) = c.type_code();
            let repeat = match &c.data {
                ColumnData::Str { width, values } => {
                    if values.len() != self.n_rows || values.iter().any(|v| v.len() > *width || !v.is_ascii()) {
                        return Err(Error::msg(format!("FITS column {}: strings do not fit", c.name)));
                    }
                    1
                }
                _ => match (c.values(), self.n_rows) {
                    (0, 0) => c.dims.as_ref().map_or(1, |d| d.iter().product()),
                    (v, rows) if rows > 0 && v % rows == 0 => v / rows,
                    (v, rows) => {
                        return Err(Error::msg(format!("FITS column {}: {v} values for {rows} rows", c.name)));
                    }
                },
            };
            if let Some(d) = &c.dims {
                if d.iter().product::<usize>() != repeat {
                    return Err(Error::msg(format!(
                        "FITS column {}: TDIM {d:?} does not match {repeat} values",
                        c.name
                    )));
                }
            }
            repeats.push(repeat);
            row_bytes += repeat * size;
            let form = if code == 'A' { format!("{size}A") } else { format!("{repeat}{code}") };
            cards.push(Card::new(&format!("TTYPE{n}"), Value::Str(c.name.clone()), ""));
            cards.push(Card::new(&format!("TFORM{n}"), Value::Str(form), ""));
            if !c.unit.is_empty() {
                cards.push(Card::new(&format!("TUNIT{n}"), Value::Str(c.unit.clone()), ""));
            }
            if let Some(d) = &c.dims {
                let dims: Vec<String> = d.iter().map(usize::to_string).collect();
                cards.push(Card::new(&format!("TDIM{n}"), Value::Str(format!("({})", dims.join(","))), ""));
            }
        }
        cards[3].value = Value::Int(row_bytes as i64);
        cards.push(Card::new("EXTNAME", Value::Str(self.extname.clone()), ""));
        cards.extend_from_slice(&self.cards);
        let mut out = header_bytes(&cards)?;
        let start = out.len();
        for row in 0..self.n_rows {
            for (c, &repeat) in self.columns.iter().zip(&repeats) {
                let range = row * repeat..(row + 1) * repeat;
                match &c.data {
                    ColumnData::F32(v) => v[range].iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
                    ColumnData::F64(v) => v[range].iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
                    ColumnData::I32(v) => v[range].iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
                    ColumnData::I64(v) => v[range].iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
                    ColumnData::Str { width, values } => {
                        let mut s = values[row].as_bytes().to_vec();
                        s.resize(*width, b' ');
                        out.extend_from_slice(&s);
                    }
                }
            }
        }
        let data_len = out.len() - start;
        out.resize(start + data_len.div_ceil(BLOCK) * BLOCK, 0);
        Ok(out)
    }
}

/// The bytes of a FITS file: an empty primary HDU with `primary_cards`, then the tables.
pub fn file_bytes(primary_cards: &[Card], tables: &[BinTable]) -> Result<Vec<u8>> {
    let mut out = primary_header(primary_cards)?;
    for t in tables {
        out.extend(t.bytes()?);
    }
    Ok(out)
}

/// Writes a FITS file.
pub fn write(path: &std::path::Path, primary_cards: &[Card], tables: &[BinTable]) -> Result<()> {
    write_with_copies(path, primary_cards, tables, &[])
}

/// Writes a FITS file whose last extensions are `copies`: HDUs read from another file
/// ([`RawHdu::bytes`]), carried over byte for byte.
pub fn write_with_copies(
    path: &std::path::Path,
    primary_cards: &[Card],
    tables: &[BinTable],
    copies: &[&RawHdu],
) -> Result<()> {
    let mut bytes = file_bytes(primary_cards, tables)?;
    for hdu in copies {
        bytes.extend_from_slice(&hdu.bytes);
    }
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
    f.write_all(&bytes).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

/// One HDU of a FITS file as read: its header cards (keyword → value text, long strings
/// joined) and its bytes (header and padded data), for copying it into another file.
#[derive(Clone, Debug)]
pub struct RawHdu {
    pub cards: Vec<(String, String)>,
    pub bytes: Vec<u8>,
}

impl RawHdu {
    /// The raw value text of `key` (first occurrence).
    fn raw(&self, key: &str) -> Option<&str> {
        self.cards.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A string value (quotes removed, doubled quotes undone, trailing spaces dropped).
    pub fn string(&self, key: &str) -> Option<String> {
        let v = self.raw(key)?.trim_start();
        let inner = v.strip_prefix('\'')?;
        let mut out = String::new();
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    out.push('\'');
                    continue;
                }
                break;
            }
            out.push(c);
        }
        Some(out.trim_end().to_string())
    }

    /// A numeric value.
    pub fn number(&self, key: &str) -> Option<f64> {
        let v = self.raw(key)?;
        let v = v.split('/').next().unwrap_or("").trim();
        v.replace('D', "E").parse().ok()
    }

    pub fn extname(&self) -> String {
        self.string("EXTNAME").unwrap_or_else(|| "PRIMARY".into())
    }
}

impl RawHdu {
    /// A numeric column of a binary table, as f64 (scalar columns of types E, D, K, J, I, B).
    /// `what` names the file in errors.
    pub fn column_f64(&self, name: &str, what: &str) -> Result<Vec<f64>> {
        let bad = |m: String| Error::msg(format!("{what}: table {}: {m}", self.extname()));
        let int = |k: &str| self.number(k).filter(|v| *v >= 0.0).map(|v| v as usize);
        let (width, rows, n_fields) = match (int("NAXIS1"), int("NAXIS2"), int("TFIELDS")) {
            (Some(w), Some(r), Some(f)) => (w, r, f),
            _ => return Err(bad("not a binary table (NAXIS1, NAXIS2 or TFIELDS missing)".into())),
        };
        let mut offset = 0usize;
        let mut found = None;
        for i in 1..=n_fields {
            let form = self.string(&format!("TFORM{i}")).ok_or_else(|| bad(format!("TFORM{i} missing")))?;
            let digits: String = form.chars().take_while(|c| c.is_ascii_digit()).collect();
            let repeat: usize =
                if digits.is_empty() { 1 } else { digits.parse().map_err(|_| bad(format!("TFORM{i} {form:?}")))? };
            let code = form[digits.len()..].chars().next().ok_or_else(|| bad(format!("TFORM{i} {form:?}")))?;
            let size = match code {
                'L' | 'B' | 'A' | 'X' => 1,
                'I' => 2,
                'J' | 'E' => 4,
                'K' | 'D' | 'C' | 'P' => 8,
                'M' | 'Q' => 16,
                _ => return Err(bad(format!("TFORM{i} {form:?} is not a FITS type"))),
            };
            let bytes = if code == 'X' { repeat.div_ceil(8) } else { repeat * size };
            if self.string(&format!("TTYPE{i}")).as_deref() == Some(name) {
                if repeat != 1 || !matches!(code, 'E' | 'D' | 'K' | 'J' | 'I' | 'B') {
                    return Err(bad(format!("column {name} is {form}, not a numeric scalar")));
                }
                found = Some((offset, code));
            }
            offset += bytes;
        }
        let (at, code) = found.ok_or_else(|| bad(format!("no column {name}")))?;
        if offset != width {
            return Err(bad(format!("the columns take {offset} bytes, NAXIS1 says {width}")));
        }
        let header_end = self
            .bytes
            .chunks(80)
            .position(|c| c.starts_with(b"END     ") || c == b"END".as_slice())
            .map(|i| (i * 80 + 80).div_ceil(2880) * 2880)
            .ok_or_else(|| bad("no END card".into()))?;
        let data = self.bytes.get(header_end..header_end + width * rows).ok_or_else(|| bad("data truncated".into()))?;
        Ok(data
            .chunks_exact(width)
            .map(|row| {
                let b = &row[at..];
                match code {
                    'E' => f32::from_be_bytes(b[..4].try_into().expect("4")) as f64,
                    'D' => f64::from_be_bytes(b[..8].try_into().expect("8")),
                    'K' => i64::from_be_bytes(b[..8].try_into().expect("8")) as f64,
                    'J' => i32::from_be_bytes(b[..4].try_into().expect("4")) as f64,
                    'I' => i16::from_be_bytes(b[..2].try_into().expect("2")) as f64,
                    _ => b[0] as f64,
                }
            })
            .collect())
    }

    /// The same HDU under another `EXTNAME` (the card rewritten in place; everything else,
    /// data included, byte for byte).
    pub fn renamed(&self, extname: &str) -> Result<RawHdu> {
        let card = card_text(&Card::new("EXTNAME", Value::Str(extname.into()), ""))?;
        if card.len() != 80 {
            return Err(Error::msg(format!("EXTNAME {extname:?} is too long")));
        }
        let mut bytes = self.bytes.clone();
        let header_end = bytes
            .chunks(80)
            .position(|c| c.starts_with(b"END     ") || c == b"END".as_slice())
            .map(|i| i * 80)
            .unwrap_or(bytes.len());
        let at = (0..header_end)
            .step_by(80)
            .find(|&i| bytes[i..i + 8] == *b"EXTNAME ")
            .ok_or_else(|| Error::msg("HDU has no EXTNAME card to rename"))?;
        bytes[at..at + 80].copy_from_slice(card.as_bytes());
        let mut cards = self.cards.clone();
        if let Some(c) = cards.iter_mut().find(|c| c.0 == "EXTNAME") {
            c.1 = card[10..].to_string();
        }
        Ok(RawHdu { cards, bytes })
    }
}

/// Gzip of `bytes` (no file name, modification time 0: the same bytes give the same file).
pub fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut enc = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).map_err(|e| Error::io("gzip".to_string(), e))?;
    enc.finish().map_err(|e| Error::io("gzip".to_string(), e))
}

/// Adds the cards of one 2880-byte header block to `cards` (keyword, value text; `CONTINUE`
/// long strings joined); true when the block holds the `END` card. Shared by every FITS reader.
pub fn header_block_cards(block: &[u8], cards: &mut Vec<(String, String)>) -> std::result::Result<bool, &'static str> {
    for card in block.chunks(80) {
        if !card.is_ascii() {
            return Err("a header card is not ASCII");
        }
        let text = std::str::from_utf8(card).expect("ascii");
        if text.len() < 10 {
            return Err("a header card is shorter than 80 characters");
        }
        let key = text[..8].trim_end();
        if key == "END" {
            return Ok(true);
        } else if key == "CONTINUE" {
            // Long string: append to the previous value, whose text ends in `&'`.
            if let Some((_, prev)) = cards.last_mut() {
                let piece = text[8..].trim();
                if let (Some(p), Some(stripped)) = (prev.trim_end().strip_suffix("&'"), piece.strip_prefix('\'')) {
                    *prev = format!("{p}{stripped}");
                }
            }
        } else if &text[8..10] == "= " {
            cards.push((key.to_string(), text[10..].to_string()));
        }
    }
    Ok(false)
}

/// Splits FITS bytes into HDUs, checking the structure: 2880-byte blocks, an `END` card in
/// every header, data sizes from `BITPIX`, `NAXISn`, `PCOUNT` and `GCOUNT`. Errors name `what`
/// (the file), the byte offset and what was expected.
pub fn read_hdus(bytes: &[u8], what: &str) -> Result<Vec<RawHdu>> {
    let bad = |offset: usize, msg: &str| Error::msg(format!("{what}: not a valid FITS file at byte {offset}: {msg}"));
    if !bytes.len().is_multiple_of(BLOCK) {
        return Err(bad(bytes.len(), &format!("the size {} is not a multiple of 2880 (truncated?)", bytes.len())));
    }
    let mut hdus = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        let mut cards: Vec<(String, String)> = Vec::new();
        let mut ended = false;
        while !ended {
            if at + BLOCK > bytes.len() {
                return Err(bad(at, "header without an END card (truncated?)"));
            }
            ended = header_block_cards(&bytes[at..at + BLOCK], &mut cards).map_err(|m| bad(at, m))?;
            at += BLOCK;
        }
        if hdus.is_empty() && cards.first().map(|c| c.0.as_str()) != Some("SIMPLE") {
            return Err(bad(start, "the first header does not start with SIMPLE"));
        }
        let hdu = RawHdu { cards, bytes: Vec::new() };
        let int = |k: &str| -> Result<i64> {
            hdu.number(k).map(|v| v as i64).ok_or_else(|| bad(start, &format!("header lacks a numeric {k}")))
        };
        let bitpix = int("BITPIX")?;
        let naxis = int("NAXIS")?;
        let data = if naxis == 0 {
            0
        } else {
            let mut n: i64 = 1;
            for i in 1..=naxis {
                n = n.saturating_mul(int(&format!("NAXIS{i}"))?);
            }
            let pcount = hdu.number("PCOUNT").unwrap_or(0.0) as i64;
            let gcount = hdu.number("GCOUNT").unwrap_or(1.0) as i64;
            (bitpix.abs() / 8).saturating_mul(gcount.saturating_mul(pcount.saturating_add(n)))
        };
        if data < 0 {
            return Err(bad(start, "negative data size"));
        }
        let padded = (data as usize).div_ceil(BLOCK) * BLOCK;
        if at + padded > bytes.len() {
            return Err(bad(at, &format!("{padded} bytes of data announced, {} left (truncated?)", bytes.len() - at)));
        }
        at += padded;
        hdus.push(RawHdu { bytes: bytes[start..at].to_vec(), ..hdu });
    }
    Ok(hdus)
}

/// Reads a FITS file's HDUs ([`read_hdus`]).
pub fn read_file(path: &std::path::Path, what: &str) -> Result<Vec<RawHdu>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(format!("cannot read {what}"), e))?;
    read_hdus(&bytes, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_read_back_and_damage_is_named() {
        let t = BinTable {
            extname: "GTI".into(),
            n_rows: 2,
            columns: vec![Column::new("START", "s", ColumnData::F64(vec![1.0, 3.0]))],
            cards: vec![
                Card::new("NOTE", Value::Str("it's ".to_string() + &"y".repeat(100)), ""),
                Card::new("GH_CUT", Value::Float(0.75), "c"),
            ],
        };
        let bytes = file_bytes(&[Card::new("ORIGIN", Value::Str("x".into()), "")], &[t]).unwrap();
        let hdus = read_hdus(&bytes, "t.fits").unwrap();
        assert_eq!(hdus.len(), 2);
        assert_eq!(hdus[1].extname(), "GTI");
        assert_eq!(hdus[1].string("NOTE").unwrap(), "it's ".to_string() + &"y".repeat(100));
        assert_eq!(hdus[1].number("GH_CUT"), Some(0.75));
        assert_eq!(hdus[0].bytes.len() + hdus[1].bytes.len(), bytes.len());
        let e = read_hdus(&bytes[..bytes.len() - 2880], "t.fits").unwrap_err().to_string();
        assert!(e.contains("t.fits") && e.contains("truncated"), "{e}");
        let e = read_hdus(&bytes[..100], "t.fits").unwrap_err().to_string();
        assert!(e.contains("multiple of 2880"), "{e}");
        let mut junk = bytes.clone();
        junk[..6].copy_from_slice(b"SIMPLX");
        assert!(read_hdus(&junk, "t.fits").is_err());
        let renamed = hdus[1].renamed("GTI_1001").unwrap();
        assert_eq!(renamed.extname(), "GTI_1001");
        assert_eq!(renamed.bytes.len(), hdus[1].bytes.len());
        let again = read_hdus(&[hdus[0].bytes.clone(), renamed.bytes].concat(), "r.fits").unwrap();
        assert_eq!(again[1].extname(), "GTI_1001");
        let gz = gzip(&bytes).unwrap();
        assert_eq!(gz, gzip(&bytes).unwrap());
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    }

    #[test]
    fn cards_are_80_characters_and_blocks_2880_bytes() {
        let t = BinTable {
            extname: "EFFECTIVE AREA".into(),
            n_rows: 1,
            columns: vec![
                Column::array("ENERG_LO", "TeV", &[3], ColumnData::F32(vec![1.0, 2.0, 3.0])),
                Column::array("EFFAREA", "m2", &[3, 2], ColumnData::F32(vec![0.0; 6])),
            ],
            cards: vec![Card::new("HDUCLAS2", Value::Str("EFF_AREA".into()), "")],
        };
        let bytes = file_bytes(&[Card::new("ORIGIN", Value::Str("it's".into()), "quote")], &[t]).unwrap();
        assert_eq!(bytes.len() % 2880, 0);
        let text = String::from_utf8_lossy(&bytes[..2880]);
        assert!(text.starts_with("SIMPLE  =                    T"));
        assert!(text.contains("ORIGIN  = 'it''s   '"));
        let ext = String::from_utf8_lossy(&bytes[2880..5760]);
        assert!(ext.contains("NAXIS1  =                   36"));
        assert!(ext.contains("TFORM2  = '6E      '"));
        assert!(ext.contains("TDIM2   = '(3,2)   '"));
        assert!(ext.contains("EXTNAME = 'EFFECTIVE AREA'"));
        assert!(bad_key_is_refused());
        let long = card_text(&Card::new("S1MSEL", Value::Str("x".repeat(150)), "")).unwrap();
        assert_eq!(long.len(), 240);
        assert!(long.starts_with("S1MSEL  = 'xxx") && long[80..].starts_with("CONTINUE  'xxx"));
    }

    fn bad_key_is_refused() -> bool {
        card_text(&Card::new("lower", Value::Int(1), "")).is_err()
            && card_text(&Card::new("TOOLONGKEY", Value::Int(1), "")).is_err()
    }
}
