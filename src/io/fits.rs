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
use crate::error::{Error, Result};
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

fn header_bytes(cards: &[Card]) -> Result<Vec<u8>> {
    let mut out = String::new();
    for c in cards {
        out.push_str(&card_text(c)?);
    }
    out.push_str(&format!("{:<80}", "END"));
    let mut bytes = out.into_bytes();
    bytes.resize(bytes.len().div_ceil(BLOCK) * BLOCK, b' ');
    Ok(bytes)
}

fn primary_header(cards: &[Card]) -> Result<Vec<u8>> {
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
    let bytes = file_bytes(primary_cards, tables)?;
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
    f.write_all(&bytes).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

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
