//! Writer of zfits files (`.fits.fz`) as the camera server writes them: a FITS file whose binary
//! tables are tile catalogues over compressed, flattened protobuf messages. It is the inverse of
//! [`crate::zfits`] and exists so that simulated raw nights cost, byte for byte, what real SST-1M
//! data cost to read.
//!
//! The layout and the processings are those of protozfits' `ProtobufZOFits` (the real file
//! `example_SST1M_20180822` is the reference; its tile headers name the processings per
//! column):
//!
//! * a primary HDU without data, then one BINTABLE per message stream: `NAXIS1` = 16 bytes per
//!   column (a `1QB` descriptor `(size, heap offset)`), `NAXIS2` = number of tiles, the heap
//!   after the catalogue (`ZHEAPPTR`), `ZNAXIS1`/`ZNAXIS2` the uncompressed row width and row
//!   count, `ZTILELEN` rows per tile, and per column `TTYPE`, `ZFORM`, `ZCTYP='CTA'`, `TPBID`
//!   (the protobuf field path) and `TZERO` for unsigned fields;
//! * per tile a 16-byte `TILE` header (row count, bytes of the tile's blocks), then one block
//!   per column: `{u64 size, 'C', n_procs, u16 procs[]}` and the payload, the processings
//!   applied in the listed order (the reader undoes them in reverse);
//! * the processings: raw, smoothing, FACT Huffman16 and halfman16, diff, split hi/lo 16 and 32,
//!   128-offset and zlib (at its fast level: decoding costs the same at any level). The Huffman code is length-limited to 32 bits and written with the
//!   code table protozfits reads (symbol, length, code bytes), the bit stream least significant
//!   bit first.
//!
//! Writing streams: the caller says how many rows a table may hold, the header and catalogue
//! are reserved (a catalogue larger than the tiles written leaves a gap before the heap, as in
//! real runs: `ZHEAPPTR` > `NAXIS1·NAXIS2`), each tile is compressed and appended as soon as it is full, and `finish`
//! rewrites the header and the catalogue in place (their sizes do not change). The output is a
//! pure function of the rows: no dates or host names unless the caller puts them in cards.
use crate::fits::{header_bytes, primary_header, Card, Value};
use crate::zfits::Elem;
use sst1mflow_base::error::{Error, Result};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const BLOCK: u64 = 2880;

/// A processing of a column block (protozfits numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Processing {
    Raw = 0,
    Smoothing = 1,
    Huffman16 = 2,
    Diff = 3,
    SplitHiLo16 = 5,
    Zlib = 7,
    Halfman16 = 12,
    SplitHiLo32 = 14,
    Offset128 = 16,
}

/// One column of a table to write.
#[derive(Clone, Debug)]
pub struct ColumnSpec {
    /// The flattened field name (`hiGain_waveforms_samples`).
    pub name: String,
    /// The protobuf field-number path (`6.1.1`).
    pub field_path: String,
    pub elem: Elem,
    /// 1 for a scalar field; for an array, the number of elements one message holds (`ZFORM`).
    pub repeat: usize,
    /// Unsigned field (a `TZERO` card, as the camera server writes it).
    pub unsigned: bool,
    /// Applied in this order at writing.
    pub processings: Vec<Processing>,
}

impl ColumnSpec {
    pub fn new(name: &str, field_path: &str, elem: Elem, repeat: usize, unsigned: bool, procs: &[Processing]) -> Self {
        ColumnSpec {
            name: name.into(),
            field_path: field_path.into(),
            elem,
            repeat,
            unsigned,
            processings: procs.to_vec(),
        }
    }

    fn is_scalar(&self) -> bool {
        self.repeat == 1
    }

    fn zform_letter(&self) -> char {
        match self.elem {
            Elem::I16 => 'I',
            Elem::I32 => 'J',
            Elem::I64 => 'K',
            Elem::U8 => 'B',
            Elem::F32 => 'E',
            Elem::F64 => 'D',
            Elem::Bool => 'L',
            Elem::Char => 'A',
        }
    }

    fn tzero(&self) -> Option<Value> {
        if !self.unsigned {
            return None;
        }
        // The values the camera server writes (they only mark the field unsigned).
        Some(match self.elem {
            Elem::I16 => Value::Int(32678),
            Elem::I32 => Value::Int(2147483648),
            Elem::I64 => Value::Int(9223372036854775807),
            Elem::U8 => Value::Int(-128),
            _ => return None,
        })
    }
}

/// A table (message stream) to write.
#[derive(Clone, Debug)]
pub struct TableSpec {
    pub extname: String,
    /// `PBFHEAD`, e.g. `DataModel.CameraEvent`.
    pub message_type: String,
    pub columns: Vec<ColumnSpec>,
    pub rows_per_tile: usize,
    /// Cards after the structural ones (run statistics, `TARGET`, …). Their number is fixed
    /// when the table starts; their values may be replaced at [`ZfitsWriter::finish_table`].
    pub cards: Vec<Card>,
}

struct OpenTable {
    spec: TableSpec,
    header_at: u64,
    header_len: usize,
    heap_start: u64,
    max_rows: u64,
    /// Catalogue rows reserved before the heap.
    reserved_tiles: usize,
    /// Per tile, per column: (size, offset from the heap start).
    catalogue: Vec<Vec<(u64, u64)>>,
    heap_len: u64,
    rows: u64,
    /// The flattened bytes of the current tile, per column.
    pending: Vec<Vec<u8>>,
    pending_rows: usize,
    uncompressed: u64,
}

/// Writes one zfits file: [`ZfitsWriter::create`], then per table `start_table`, `push_row`
/// for each message, `finish_table`; then [`ZfitsWriter::finish`].
pub struct ZfitsWriter {
    path: PathBuf,
    out: BufWriter<File>,
    at: u64,
    table: Option<OpenTable>,
}

impl ZfitsWriter {
    pub fn create(path: &Path, primary_cards: &[Card]) -> Result<ZfitsWriter> {
        let what = path.display().to_string();
        let file = File::create(path).map_err(|e| Error::io(format!("cannot create {what}"), e))?;
        let mut w =
            ZfitsWriter { path: path.to_path_buf(), out: BufWriter::with_capacity(1 << 20, file), at: 0, table: None };
        let header = primary_header(primary_cards)?;
        w.write_all(&header)?;
        Ok(w)
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(|e| Error::io(format!("cannot write {}", self.path.display()), e))?;
        self.at += bytes.len() as u64;
        Ok(())
    }

    fn table_cards(t: &OpenTable) -> Vec<Card> {
        let s = &t.spec;
        let n_cols = s.columns.len();
        let row_width: usize = s.columns.iter().map(|c| c.elem.size() * c.repeat).sum();
        let ratio = if t.heap_len > 0 { t.uncompressed as f64 / t.heap_len as f64 } else { 1.0 };
        let n_tiles = t.catalogue.len() as u64;
        let reserved = 16 * n_cols as u64 * t.reserved_tiles as u64;
        let used = 16 * n_cols as u64 * n_tiles;
        let mut cards = vec![
            Card::new("XTENSION", Value::Str("BINTABLE".into()), "binary table extension"),
            Card::new("BITPIX", Value::Int(8), "8-bit bytes"),
            Card::new("NAXIS", Value::Int(2), "2-dimensional binary table"),
            Card::new("NAXIS1", Value::Int(16 * n_cols as i64), "width of table in bytes"),
            Card::new("NAXIS2", Value::Int(n_tiles as i64), "number of rows in table"),
            Card::new("PCOUNT", Value::Int((reserved - used + t.heap_len) as i64), "size of special data area"),
            Card::new("GCOUNT", Value::Int(1), "one data group (required keyword)"),
            Card::new("TFIELDS", Value::Int(n_cols as i64), "number of fields in each row"),
            Card::new("EXTNAME", Value::Str(s.extname.clone()), "name of extension table"),
            Card::new("ZTABLE", Value::Bool(true), "Table is compressed"),
            Card::new("ZNAXIS1", Value::Int(row_width as i64), "Width of uncompressed rows"),
            Card::new("ZNAXIS2", Value::Int(t.rows as i64), "Number of uncompressed rows"),
            Card::new("ZPCOUNT", Value::Int(0), ""),
            Card::new("ZHEAPPTR", Value::Int(reserved as i64), ""),
            Card::new("ZTILELEN", Value::Int(s.rows_per_tile as i64), "Number of rows per tile"),
            Card::new("THEAP", Value::Int(used as i64), ""),
            Card::new("RAWSUM", Value::Str("0".into()), "Checksum of raw little endian data"),
            Card::new("ZRATIO", Value::Float((ratio * 1e6).round() / 1e6), "Compression ratio"),
            Card::new("ZSHRINK", Value::Int(1), "Catalog shrink factor"),
            Card::new("PBFHEAD", Value::Str(s.message_type.clone()), "Written message name"),
            Card::new("CREATOR", Value::Str("N4ACTL2IO14ProtobufZOFitsE".into()), "Class that wrote this file"),
            Card::new("ORIGIN", Value::Str("CTA".into()), "Institution that wrote the file"),
            Card::new("WORKPKG", Value::Str("ACTL".into()), "Workpackage that wrote the file"),
        ];
        cards.extend(s.cards.iter().cloned());
        for (i, c) in s.columns.iter().enumerate() {
            let n = i + 1;
            cards.push(Card::new(&format!("TFORM{n}"), Value::Str("1QB".into()), ""));
            cards.push(Card::new(&format!("TTYPE{n}"), Value::Str(c.name.clone()), ""));
            if let Some(z) = c.tzero() {
                cards.push(Card::new(&format!("TZERO{n}"), z, ""));
            }
            cards.push(Card::new(&format!("ZFORM{n}"), Value::Str(format!("{}{}", c.repeat, c.zform_letter())), ""));
            cards.push(Card::new(&format!("ZCTYP{n}"), Value::Str("CTA".into()), "Custom CTA compression"));
            cards.push(Card::new(&format!("TPBID{n}"), Value::Str(c.field_path.clone()), "Protobuf ID"));
        }
        cards
    }

    /// Starts a table of at most `max_rows` messages: the catalogue is reserved for them (as
    /// the camera server reserves it), the heap follows it; fewer rows may be written.
    pub fn start_table(&mut self, spec: TableSpec, max_rows: u64) -> Result<()> {
        if self.table.is_some() {
            return Err(Error::msg(format!("{}: a table is still open", self.path.display())));
        }
        if spec.rows_per_tile == 0 || spec.columns.is_empty() {
            return Err(Error::msg(format!(
                "{}: table {} needs columns and rows per tile",
                self.path.display(),
                spec.extname
            )));
        }
        let reserved_tiles = (max_rows as usize).div_ceil(spec.rows_per_tile).max(1);
        let n_cols = spec.columns.len();
        let mut t = OpenTable {
            pending: vec![Vec::new(); n_cols],
            spec,
            header_at: self.at,
            header_len: 0,
            heap_start: 0,
            max_rows,
            reserved_tiles,
            catalogue: Vec::new(),
            heap_len: 0,
            rows: 0,
            pending_rows: 0,
            uncompressed: 0,
        };
        let header = header_bytes(&Self::table_cards(&t))?;
        t.header_len = header.len();
        self.write_all(&header)?;
        let catalogue = vec![0u8; 16 * n_cols * reserved_tiles];
        self.write_all(&catalogue)?;
        t.heap_start = self.at;
        self.table = Some(t);
        Ok(())
    }

    /// Appends one message: per column the value's bytes, little-endian (a scalar's
    /// `elem.size()` bytes, an array's elements back to back).
    pub fn push_row(&mut self, cells: &[&[u8]]) -> Result<()> {
        let what = self.path.display().to_string();
        let t = self.table.as_mut().ok_or_else(|| Error::msg(format!("{what}: no table is open")))?;
        if cells.len() != t.spec.columns.len() {
            return Err(Error::msg(format!("{what}: {} cells for {} columns", cells.len(), t.spec.columns.len())));
        }
        if t.rows >= t.max_rows {
            return Err(Error::msg(format!("{what}: more rows than the {} reserved", t.max_rows)));
        }
        for ((c, cell), buf) in t.spec.columns.iter().zip(cells).zip(t.pending.iter_mut()) {
            if c.is_scalar() {
                if cell.len() != c.elem.size() {
                    return Err(Error::msg(format!("{what}: column {}: a scalar of {} bytes", c.name, cell.len())));
                }
            } else {
                if cell.len() > c.repeat * c.elem.size() || cell.len() % c.elem.size() != 0 {
                    return Err(Error::msg(format!("{what}: column {}: an array of {} bytes", c.name, cell.len())));
                }
                buf.extend_from_slice(&(cell.len() as i32).to_le_bytes());
            }
            buf.extend_from_slice(cell);
        }
        t.rows += 1;
        t.pending_rows += 1;
        if t.pending_rows == t.spec.rows_per_tile {
            self.flush_tile()?;
        }
        Ok(())
    }

    fn flush_tile(&mut self) -> Result<()> {
        let t = self.table.as_mut().expect("open table");
        if t.pending_rows == 0 {
            return Ok(());
        }
        let blocks: Vec<Vec<u8>> =
            t.spec.columns.iter().zip(&t.pending).map(|(c, bytes)| encode_block(bytes, &c.processings)).collect();
        let n_rows = t.pending_rows as u32;
        t.uncompressed += t.pending.iter().map(|p| p.len() as u64).sum::<u64>();
        let total: u64 = blocks.iter().map(|b| b.len() as u64).sum();
        let mut offset = t.heap_len + 16;
        let mut entries = Vec::with_capacity(blocks.len());
        for b in &blocks {
            entries.push((b.len() as u64, offset));
            offset += b.len() as u64;
        }
        t.catalogue.push(entries);
        t.heap_len = offset;
        for p in t.pending.iter_mut() {
            p.clear();
        }
        t.pending_rows = 0;
        let mut head = Vec::with_capacity(16);
        head.extend_from_slice(b"TILE");
        head.extend_from_slice(&n_rows.to_le_bytes());
        head.extend_from_slice(&total.to_le_bytes());
        self.write_all(&head)?;
        for b in &blocks {
            self.write_all(b)?;
        }
        Ok(())
    }

    /// Closes the open table: the last tile, the padding, the header and catalogue rewritten
    /// with the final sizes. `cards` replaces the values of the table's extra cards (same keys).
    pub fn finish_table(&mut self, cards: Option<Vec<Card>>) -> Result<()> {
        let what = self.path.display().to_string();
        self.flush_tile()?;
        let mut t = self.table.take().ok_or_else(|| Error::msg(format!("{what}: no table is open")))?;
        if let Some(cards) = cards {
            if cards.iter().map(|c| &c.key).ne(t.spec.cards.iter().map(|c| &c.key)) {
                return Err(Error::msg(format!("{what}: the final cards of table {} differ in keys", t.spec.extname)));
            }
            t.spec.cards = cards;
        }
        let data_len = self.at - (t.header_at + t.header_len as u64);
        let pad = data_len.div_ceil(BLOCK) * BLOCK - data_len;
        self.write_all(&vec![0u8; pad as usize])?;
        let header = header_bytes(&Self::table_cards(&t))?;
        if header.len() != t.header_len {
            return Err(Error::msg(format!("{what}: table {}: the header grew while writing", t.spec.extname)));
        }
        let mut catalogue = Vec::with_capacity(16 * t.spec.columns.len() * t.reserved_tiles);
        for tile in &t.catalogue {
            for &(size, offset) in tile {
                catalogue.extend_from_slice(&size.to_be_bytes());
                catalogue.extend_from_slice(&offset.to_be_bytes());
            }
        }
        let io = |e| Error::io(format!("cannot write {what}"), e);
        self.out.seek(SeekFrom::Start(t.header_at)).map_err(io)?;
        self.out.write_all(&header).map_err(io)?;
        self.out.write_all(&catalogue).map_err(io)?;
        self.out.seek(SeekFrom::Start(self.at)).map_err(io)?;
        Ok(())
    }

    /// Flushes and syncs the file; every write error surfaces here at the latest.
    pub fn finish(mut self) -> Result<()> {
        let what = self.path.display().to_string();
        if self.table.is_some() {
            self.finish_table(None)?;
        }
        let file = self.out.into_inner().map_err(|e| Error::io(format!("cannot write {what}"), e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(format!("cannot write {what}"), e))
    }
}

/// The block of one column of a tile: header and the payload after `procs`.
pub fn encode_block(bytes: &[u8], procs: &[Processing]) -> Vec<u8> {
    let mut data = bytes.to_vec();
    for &p in procs {
        data = apply(p, data);
    }
    let head = 10 + 2 * procs.len();
    let mut block = Vec::with_capacity(head + data.len());
    block.extend_from_slice(&((head + data.len()) as u64).to_le_bytes());
    block.push(b'C');
    block.push(procs.len() as u8);
    for &p in procs {
        block.extend_from_slice(&(p as u16).to_le_bytes());
    }
    block.extend_from_slice(&data);
    block
}

fn words16(v: &[u8]) -> impl Iterator<Item = i16> + '_ {
    v.chunks_exact(2).map(|w| i16::from_le_bytes([w[0], w[1]]))
}

fn apply(p: Processing, v: Vec<u8>) -> Vec<u8> {
    match p {
        Processing::Raw => v,
        Processing::Zlib => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::with_capacity(v.len() / 2), flate2::Compression::fast());
            e.write_all(&v).expect("in memory");
            e.finish().expect("in memory")
        }
        Processing::Huffman16 => {
            let symbols: Vec<u16> = words16(&v).map(|x| x as u16).collect();
            let stream = huffman16_encode(&symbols);
            let mut out = Vec::with_capacity(stream.len() + 4);
            out.extend_from_slice(&(stream.len() as u32).to_le_bytes());
            out.extend_from_slice(&stream);
            out
        }
        Processing::Halfman16 => {
            let symbols: Vec<u16> = words16(&v).map(|x| x as u16).collect();
            let (a, b) = symbols.split_at(symbols.len() / 2);
            let (s0, s1) = (huffman16_encode(a), huffman16_encode(b));
            let mut out = Vec::with_capacity(s0.len() + s1.len() + 8);
            out.extend_from_slice(&(s0.len() as u32).to_le_bytes());
            out.extend_from_slice(&(s1.len() as u32).to_le_bytes());
            out.extend_from_slice(&s0);
            out.extend_from_slice(&s1);
            out
        }
        Processing::Smoothing => {
            let x: Vec<i16> = words16(&v).collect();
            let mut out = v;
            for j in (2..x.len()).rev() {
                let y = x[j].wrapping_sub(((x[j - 1] as i32 + x[j - 2] as i32) / 2) as i16);
                out[2 * j..2 * j + 2].copy_from_slice(&y.to_le_bytes());
            }
            out
        }
        Processing::Diff => {
            let mut prev = 0i16;
            let mut out = v;
            for w in out.chunks_exact_mut(2) {
                let x = i16::from_le_bytes([w[0], w[1]]);
                w.copy_from_slice(&x.wrapping_sub(prev).to_le_bytes());
                prev = x;
            }
            out
        }
        Processing::Offset128 => {
            let mut out = v;
            for w in out.chunks_exact_mut(2) {
                let x = i16::from_le_bytes([w[0], w[1]]).wrapping_add(128);
                w.copy_from_slice(&x.to_le_bytes());
            }
            out
        }
        Processing::SplitHiLo16 => {
            let half = v.len() / 2;
            let mut out = vec![0u8; 2 * half];
            for k in 0..half {
                out[k] = v[2 * k];
                out[half + k] = v[2 * k + 1];
            }
            out.extend_from_slice(&v[2 * half..]);
            out
        }
        Processing::SplitHiLo32 => {
            let quads = v.len() / 4;
            let half = 2 * quads;
            let mut out = vec![0u8; 4 * quads];
            for k in 0..quads {
                out[2 * k..2 * k + 2].copy_from_slice(&v[4 * k..4 * k + 2]);
                out[half + 2 * k..half + 2 * k + 2].copy_from_slice(&v[4 * k + 2..4 * k + 4]);
            }
            out.extend_from_slice(&v[4 * quads..]);
            out
        }
    }
}

/// Longest code the encoder makes (the reader takes up to 64 bits; 32 keeps every code within
/// one refill of its bit buffer).
const MAX_CODE_BITS: u32 = 32;

/// Code lengths of a Huffman code over `counts` (symbol, count > 0), at most `MAX_CODE_BITS`.
fn code_lengths(counts: &[(u16, u64)]) -> Vec<u32> {
    let mut weights: Vec<u64> = counts.iter().map(|c| c.1).collect();
    loop {
        // Nodes: leaves 0..n, internal n..; a min-heap on (weight, node) keeps ties deterministic.
        let n = weights.len();
        let mut parent = vec![usize::MAX; 2 * n];
        let mut heap: BinaryHeap<std::cmp::Reverse<(u64, usize)>> =
            weights.iter().enumerate().map(|(i, &w)| std::cmp::Reverse((w, i))).collect();
        let mut next = n;
        while heap.len() > 1 {
            let std::cmp::Reverse((wa, a)) = heap.pop().expect("two nodes");
            let std::cmp::Reverse((wb, b)) = heap.pop().expect("two nodes");
            parent[a] = next;
            parent[b] = next;
            heap.push(std::cmp::Reverse((wa + wb, next)));
            next += 1;
        }
        let root = next - 1;
        let mut depth = vec![0u32; next];
        for node in (0..root).rev() {
            depth[node] = depth[parent[node]] + 1;
        }
        let lengths: Vec<u32> = depth[..n].to_vec();
        if lengths.iter().all(|&l| l <= MAX_CODE_BITS) {
            return lengths;
        }
        // Too deep: flatten the distribution and build again.
        for w in weights.iter_mut() {
            *w = (*w >> 1).max(1);
        }
    }
}

/// Encodes 16-bit symbols as one FACT Huffman16 stream: u64 symbol count, u64 code count,
/// per code (u16 symbol, u8 length, ⌈length/8⌉ code bytes), then the bit stream, least
/// significant bit first, padded to an even number of bytes. One distinct symbol is stored
/// alone (the reader repeats it).
pub fn huffman16_encode(symbols: &[u16]) -> Vec<u8> {
    let mut counts = vec![0u64; 1 << 16];
    for &s in symbols {
        counts[s as usize] += 1;
    }
    let present: Vec<(u16, u64)> =
        counts.iter().enumerate().filter(|(_, &c)| c > 0).map(|(s, &c)| (s as u16, c)).collect();
    let mut out = Vec::with_capacity(symbols.len() + 16);
    out.extend_from_slice(&(symbols.len() as u64).to_le_bytes());
    out.extend_from_slice(&(present.len() as u64).to_le_bytes());
    if present.len() <= 1 {
        if let Some(&(s, _)) = present.first() {
            out.extend_from_slice(&s.to_le_bytes());
        }
        return out;
    }
    let lengths = code_lengths(&present);
    // Canonical codes (by length, then symbol), bit-reversed so the first bit is bit 0.
    let mut order: Vec<usize> = (0..present.len()).collect();
    order.sort_by_key(|&i| (lengths[i], present[i].0));
    let mut codes = vec![(0u64, 0u32); 1 << 16];
    let (mut code, mut prev_len) = (0u64, 0u32);
    for (k, &i) in order.iter().enumerate() {
        let len = lengths[i];
        if k > 0 {
            code = (code + 1) << (len - prev_len);
        } else {
            code <<= len;
        }
        prev_len = len;
        let reversed = code.reverse_bits() >> (64 - len);
        codes[present[i].0 as usize] = (reversed, len);
    }
    for &(s, _) in &present {
        let (bits, len) = codes[s as usize];
        out.extend_from_slice(&s.to_le_bytes());
        out.push(len as u8);
        out.extend_from_slice(&bits.to_le_bytes()[..(len as usize).div_ceil(8)]);
    }
    let (mut acc, mut n_acc) = (0u64, 0u32);
    for &s in symbols {
        let (bits, len) = codes[s as usize];
        acc |= bits << n_acc;
        n_acc += len;
        while n_acc >= 32 {
            out.extend_from_slice(&(acc as u32).to_le_bytes());
            acc >>= 32;
            n_acc -= 32;
        }
    }
    while n_acc > 0 {
        out.push(acc as u8);
        acc >>= 8;
        n_acc = n_acc.saturating_sub(8);
    }
    if out.len() % 2 == 1 {
        out.push(0);
    }
    out
}

/// The columns of SST-1M `DataModel.CameraEvent` tables, with the processings of the real
/// file `example_SST1M_20180822` (plus `arrayEvtNum`, which SWAT fills, processed as
/// `eventNumber`).
pub fn digicam_event_columns(n_pixels: usize, n_samples: usize) -> Vec<ColumnSpec> {
    use Processing::*;
    let n_patches = n_pixels / 3;
    vec![
        ColumnSpec::new("telescopeID", "1", Elem::I32, 1, false, &[SplitHiLo16, Zlib]),
        ColumnSpec::new("eventNumber", "4", Elem::I32, 1, true, &[SplitHiLo16, Smoothing, Halfman16]),
        ColumnSpec::new("arrayEvtNum", "5", Elem::I32, 1, true, &[SplitHiLo16, Smoothing, Halfman16]),
        ColumnSpec::new(
            "hiGain_waveforms_samples",
            "6.1.1",
            Elem::I16,
            n_pixels * n_samples,
            false,
            &[Diff, Huffman16],
        ),
        ColumnSpec::new(
            "hiGain_waveforms_pixelsIndices",
            "6.1.2",
            Elem::I16,
            n_pixels,
            true,
            &[Diff, Offset128, SplitHiLo16, Zlib],
        ),
        ColumnSpec::new("hiGain_waveforms_baselines", "6.1.5", Elem::I16, n_pixels, false, &[SplitHiLo16, Zlib]),
        ColumnSpec::new("local_time_nanosec", "30", Elem::I64, 1, true, &[Zlib]),
        ColumnSpec::new("local_time_sec", "31", Elem::I64, 1, true, &[Zlib]),
        ColumnSpec::new("pixels_flags", "32", Elem::I16, n_pixels, true, &[Zlib]),
        ColumnSpec::new("event_type", "34", Elem::I32, 1, true, &[SplitHiLo16, Zlib]),
        ColumnSpec::new("trigger_input_traces", "35", Elem::U8, n_patches * n_samples, true, &[Zlib]),
        ColumnSpec::new("trigger_output_patch7", "36", Elem::U8, (n_patches * n_samples).div_ceil(8), true, &[Zlib]),
        ColumnSpec::new(
            "trigger_output_patch19",
            "37",
            Elem::U8,
            (n_patches * n_samples).div_ceil(8),
            true,
            &[SplitHiLo32, Zlib],
        ),
        ColumnSpec::new("trigger_output_muon", "38", Elem::U8, (n_patches * n_samples).div_ceil(8), true, &[Raw]),
    ]
}

/// One camera event to write, per-pixel arrays in software pixel order (the writer stores
/// them in readout order through `pixel_indices`, as the camera does).
pub struct CameraEventRecord<'a> {
    pub telescope_id: i32,
    pub event_number: u32,
    pub array_event_number: u32,
    pub event_type: u32,
    pub local_time: (u64, u64),
    pub samples: &'a [i16],
    pub baselines: &'a [i16],
    pub pixels_flags: &'a [u16],
    /// Readout position i holds software pixel `pixel_indices[i]`.
    pub pixel_indices: &'a [u16],
    /// Per trigger patch and sample (patch-major), the trigger's input.
    pub trigger_input: &'a [u8],
    /// Bit-packed patch × sample trigger decisions.
    pub trigger_patch7: &'a [u8],
    pub trigger_patch19: &'a [u8],
}

/// Run statistics the camera server writes into the `Events` header.
#[derive(Default)]
struct RunStatistics {
    first_ns: Option<i128>,
    last_ns: i128,
    external: u64,
    internal: u64,
}

/// Writes an SST-1M DigiCam R0 file: a `DigicamConfig` table (one message), then `Events`,
/// so that `Events` is the file's third HDU as in SST-1M runs (sst1mpipe's nightly scripts
/// read its header as `f[2]`).
pub struct DigicamFileWriter {
    w: ZfitsWriter,
    n_pixels: usize,
    n_samples: usize,
    readout_samples: Vec<u8>,
    readout: Vec<u8>,
    readout_baselines: Vec<u8>,
    readout_flags: Vec<u8>,
    stats: RunStatistics,
    cards: Vec<Card>,
}

/// Rows per tile of the `Events` table (the camera server's value in the real files).
pub const EVENTS_PER_TILE: usize = 100;

impl DigicamFileWriter {
    /// `cards` go into the `Events` header (e.g. `TARGET`); the run statistics (`TSTARTS`,
    /// `NTRIGEXT`, …) are added from the events.
    pub fn create(path: &Path, max_events: u64, n_pixels: usize, n_samples: usize, cards: Vec<Card>) -> Result<Self> {
        let mut w = ZfitsWriter::create(path, &[])?;
        let config = TableSpec {
            extname: "DigicamConfig".into(),
            message_type: "DataModel.DigicamConfig".into(),
            columns: vec![
                ColumnSpec::new("protocol_vers", "1", Elem::U8, 39, true, &[Processing::Zlib]),
                ColumnSpec::new("sn", "2", Elem::I32, 39, true, &[Processing::SplitHiLo16, Processing::Zlib]),
                ColumnSpec::new("hv", "3", Elem::U8, 39, true, &[Processing::Zlib]),
            ],
            rows_per_tile: 100,
            cards: vec![Card::new("TIMESYS", Value::Str("UTC".into()), "Time system")],
        };
        w.start_table(config, 1)?;
        let boards: Vec<u8> = (0..39).map(|i| if i % 10 == 0 { 255 } else { 1 }).collect();
        let serials: Vec<u8> =
            (0..39u32).flat_map(|i| if i % 10 == 0 { 0 } else { 2_120_000 + i }.to_le_bytes()).collect();
        let hv: Vec<u8> = (0..39).map(|i| if i % 10 == 0 { 0 } else { 2 }).collect();
        w.push_row(&[&boards, &serials, &hv])?;
        w.finish_table(None)?;
        let mut all = cards;
        all.extend(Self::statistics_cards(&RunStatistics::default()));
        let events = TableSpec {
            extname: "Events".into(),
            message_type: "DataModel.CameraEvent".into(),
            columns: digicam_event_columns(n_pixels, n_samples),
            rows_per_tile: EVENTS_PER_TILE,
            cards: all.clone(),
        };
        w.start_table(events, max_events)?;
        Ok(DigicamFileWriter {
            w,
            n_pixels,
            n_samples,
            readout_samples: Vec::new(),
            readout: Vec::new(),
            readout_baselines: Vec::new(),
            readout_flags: Vec::new(),
            stats: RunStatistics::default(),
            cards: all,
        })
    }

    fn statistics_cards(s: &RunStatistics) -> Vec<Card> {
        let n_events = s.external + s.internal;
        let first = s.first_ns.unwrap_or(0);
        let split = |ns: i128| (ns.div_euclid(1_000_000_000) as i64, ns.rem_euclid(1_000_000_000) as i64);
        let (start_s, start_ns) = split(first);
        let (stop_s, stop_ns) = split(s.last_ns.max(first));
        let exposure = (s.last_ns - first).max(0) as f64 * 1e-9;
        let rate = if exposure > 0.0 { (n_events as f64 / exposure).round() as i64 } else { 0 };
        vec![
            Card::new("RUNTYPE", Value::Str("science".into()), "Type of data in the table"),
            Card::new("TSTARTS", Value::Int(start_s), "Timestamp of first event"),
            Card::new("TSTARTNS", Value::Int(start_ns), "Nanoseconds of the first event"),
            Card::new("TSTOPS", Value::Int(stop_s), "Timestamp of last event"),
            Card::new("TSTOPNS", Value::Int(stop_ns), "Nanoseconds of the last event"),
            Card::new("MEDRATE", Value::Int(rate), "Median trigger rate"),
            Card::new("EXPOSURE", Value::Float(exposure), "Duration of this data chunk"),
            Card::new("NTRIGEXT", Value::Int(s.external as i64), "Num. Evts. from external trigger"),
            Card::new("NTRIGINT", Value::Int(s.internal as i64), "Num. Evts. from internal trigger"),
            Card::new("TIMESYS", Value::Str("UTC".into()), "Time system"),
        ]
    }

    pub fn write(&mut self, e: &CameraEventRecord) -> Result<()> {
        let (np, ns) = (self.n_pixels, self.n_samples);
        if e.samples.len() != np * ns
            || e.baselines.len() != np
            || e.pixel_indices.len() != np
            || e.pixels_flags.len() != np
        {
            return Err(Error::msg(format!(
                "{}: event {}: arrays do not match {np} pixels × {ns} samples",
                self.w.path.display(),
                e.event_number
            )));
        }
        self.readout_samples.clear();
        self.readout_baselines.clear();
        self.readout_flags.clear();
        self.readout.clear();
        for &p in e.pixel_indices {
            let p = p as usize;
            for &s in &e.samples[p * ns..(p + 1) * ns] {
                self.readout_samples.extend_from_slice(&s.to_le_bytes());
            }
            self.readout_baselines.extend_from_slice(&e.baselines[p].to_le_bytes());
            self.readout_flags.extend_from_slice(&e.pixels_flags[p].to_le_bytes());
            self.readout.extend_from_slice(&(p as u16).to_le_bytes());
        }
        let time_ns = e.local_time.0 as i128 * 1_000_000_000 + e.local_time.1 as i128;
        self.stats.first_ns.get_or_insert(time_ns);
        self.stats.last_ns = time_ns;
        if e.event_type == crate::zfits::PEDESTAL_EVENT_TYPE {
            self.stats.internal += 1;
        } else {
            self.stats.external += 1;
        }
        let muon = vec![0u8; e.trigger_patch7.len()];
        self.w.push_row(&[
            &e.telescope_id.to_le_bytes(),
            &e.event_number.to_le_bytes(),
            &e.array_event_number.to_le_bytes(),
            &self.readout_samples,
            &self.readout,
            &self.readout_baselines,
            &e.local_time.1.to_le_bytes(),
            &e.local_time.0.to_le_bytes(),
            &self.readout_flags,
            &e.event_type.to_le_bytes(),
            e.trigger_input,
            e.trigger_patch7,
            e.trigger_patch19,
            &muon,
        ])
    }

    pub fn finish(mut self) -> Result<()> {
        let n_extra = self.cards.len() - Self::statistics_cards(&self.stats).len();
        let mut cards: Vec<Card> = self.cards[..n_extra].to_vec();
        cards.extend(Self::statistics_cards(&self.stats));
        self.w.finish_table(Some(cards))?;
        self.w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zfits::{decode_block, huffman16_decode};

    #[test]
    fn huffman16_round_trips_skewed_and_degenerate_inputs() {
        let mut x = 12345u64;
        let mut symbols = Vec::new();
        for _ in 0..20000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            // A two-sided geometric spread, as sample differences are, plus rare wide values.
            let r = (x >> 33) as u32;
            let v = if r.is_multiple_of(1000) {
                (r >> 8) as u16
            } else {
                ((r.trailing_zeros() as i16) * if r & 1 == 0 { 1 } else { -1 }) as u16
            };
            symbols.push(v);
        }
        for input in [symbols.clone(), vec![7u16; 100], vec![], vec![1, 2], (0..=65535u16).collect()] {
            let stream = huffman16_encode(&input);
            let mut out = Vec::new();
            huffman16_decode(&stream, input.len(), &mut out).unwrap();
            let back: Vec<u16> = out.chunks_exact(2).map(|w| u16::from_le_bytes([w[0], w[1]])).collect();
            assert_eq!(back, input);
        }
    }

    #[test]
    fn digicam_files_read_back_exactly() {
        let dir = std::env::temp_dir().join(format!("zfits_write_test_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("SST1M1_20261205_0001.fits.fz");
        let (np, ns, n) = (1296usize, 50usize, 250u64);
        let mut perm: Vec<u16> = (0..np as u16).collect();
        perm.reverse();
        perm.swap(3, 700);
        let target = Card::new("TARGET", Value::Str("Crab_W1,83.9,22.0".into()), "");
        let mut w = DigicamFileWriter::create(&path, n + 1234, np, ns, vec![target]).unwrap();
        let mut events = Vec::new();
        for k in 0..n {
            let samples: Vec<i16> = (0..np * ns).map(|i| 300 + ((i as u64 * 31 + k * 7) % 97) as i16).collect();
            let baselines: Vec<i16> = (0..np).map(|p| 4800 + (p as i16 % 50) + k as i16).collect();
            let flags: Vec<u16> = (0..np).map(|p| (p % 3 == 0) as u16).collect();
            let trig = vec![k as u8; 432 * ns];
            let bits = vec![0u8; 2700];
            w.write(&CameraEventRecord {
                telescope_id: 21,
                event_number: 1000 + k as u32,
                array_event_number: 5000 + 2 * k as u32,
                event_type: if k % 10 == 0 { 8 } else { 1 },
                local_time: (1_764_970_000 + k / 100, k * 9_999_999),
                samples: &samples,
                baselines: &baselines,
                pixels_flags: &flags,
                pixel_indices: &perm,
                trigger_input: &trig,
                trigger_patch7: &bits,
                trigger_patch19: &bits,
            })
            .unwrap();
            events.push((samples, baselines, flags));
        }
        w.finish().unwrap();
        let mut r = crate::zfits::DigicamReader::open(&path).unwrap();
        assert_eq!(r.target.as_deref(), Some("Crab_W1,83.9,22.0"));
        assert_eq!(r.n_events, n);
        let mut e = crate::zfits::DigicamEvent::default();
        for (k, (samples, baselines, flags)) in events.iter().enumerate() {
            assert!(r.read_into(&mut e).unwrap());
            let k = k as u64;
            assert_eq!(
                (e.telescope_id, e.event_number, e.array_event_number),
                (21, 1000 + k as u32, 5000 + 2 * k as u32)
            );
            assert_eq!(e.event_type, if k.is_multiple_of(10) { 8 } else { 1 });
            assert_eq!(e.local_clock_ns, (1_764_970_000 + k as i64 / 100) * 1_000_000_000 + k as i64 * 9_999_999);
            assert_eq!(&e.samples, samples);
            assert_eq!(&e.baselines, baselines);
            assert_eq!(&e.pixels_flags, flags);
            assert_eq!(e.pixel_indices, perm);
        }
        assert!(!r.read_into(&mut e).unwrap());
        // A first pass over the start hands its decoded tiles to the main pass, whatever the
        // memory budget keeps of them (none, the first tile, all): the same events come out.
        for budget in [0usize, 14 << 20, usize::MAX] {
            let mut first = crate::zfits::DigicamReader::open(&path).unwrap();
            first.keep_decoded_tiles(budget);
            for k in 0..150u64 {
                let (event_type, array_id) = first.peek_type().unwrap().unwrap();
                assert_eq!((event_type, array_id), (if k.is_multiple_of(10) { 8 } else { 1 }, 5000 + 2 * k as u32));
                if k % 7 == 0 {
                    assert!(first.read_into(&mut e).unwrap());
                    assert_eq!(e.samples, events[k as usize].0);
                } else {
                    first.skip_event();
                }
            }
            let tiles = first.into_decoded_tiles();
            let kept = tiles.n_events();
            assert!(match budget {
                0 => kept == 0,
                usize::MAX => kept == 200,
                _ => kept == 100,
            });
            let mut main = crate::zfits::DigicamReader::open(&path).unwrap().with_decoded_tiles(tiles).unwrap();
            for (samples, baselines, flags) in &events {
                assert!(main.read_into(&mut e).unwrap());
                assert_eq!((&e.samples, &e.baselines, &e.pixels_flags), (samples, baselines, flags));
            }
            assert!(!main.read_into(&mut e).unwrap());
        }
        // Tiles of another file are refused.
        let other = crate::zfits::DigicamReader::open(&path).unwrap().into_decoded_tiles();
        let copy = dir.join("SST1M1_20261205_0002.fits.fz");
        std::fs::copy(&path, &copy).unwrap();
        let refused = crate::zfits::DigicamReader::open(&copy).unwrap().with_decoded_tiles(other);
        assert!(refused.err().unwrap().to_string().contains("decoded tiles of"));
        // A reader that leaves the pixel flags undecoded gives everything else unchanged, and
        // refuses tiles decoded with them (and the other way round).
        let mut lean = crate::zfits::DigicamReader::open(&path).unwrap().without_pixel_flags();
        for (samples, baselines, _) in &events {
            assert!(lean.read_into(&mut e).unwrap());
            assert_eq!((&e.samples, &e.baselines, e.pixels_flags.len()), (samples, baselines, 0));
        }
        let with_flags = crate::zfits::DigicamReader::open(&path).unwrap().into_decoded_tiles();
        let refused =
            crate::zfits::DigicamReader::open(&path).unwrap().without_pixel_flags().with_decoded_tiles(with_flags);
        assert!(refused.err().unwrap().to_string().contains("other columns"));
        // Events read in place, tile by tile, are the events read one by one; a reader can
        // switch from one way to the other within a tile.
        for read_first in [0usize, 37, 100, 150] {
            let mut reader = crate::zfits::DigicamReader::open(&path).unwrap();
            for _ in 0..read_first {
                assert!(reader.read_into(&mut e).unwrap());
            }
            let mut k = read_first;
            while let Some(tile) = reader.next_tile().unwrap() {
                for j in 0..tile.n_events() {
                    let in_place = tile.event(j);
                    assert_eq!(in_place.event_number, 1000 + k as u32);
                    in_place.to_event(&mut e);
                    assert_eq!((&e.samples, &e.baselines, &e.pixels_flags), (&events[k].0, &events[k].1, &events[k].2));
                    assert_eq!(e.pixel_indices, perm);
                    k += 1;
                }
                reader.reuse_tile(tile);
            }
            assert_eq!(k, events.len());
        }
        let without = crate::zfits::DigicamReader::open(&path).unwrap().without_pixel_flags().into_decoded_tiles();
        assert!(crate::zfits::DigicamReader::open(&path).unwrap().with_decoded_tiles(without).is_err());
        if std::env::var_os("KEEP_ZFITS_TEST").is_none() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn damaged_huffman_streams_give_errors_or_values_never_panics() {
        // Sample differences as the simulated and real SST-1M files have them, then every kind
        // of damage: flipped bits, truncation, a wrong symbol count.
        let symbols: Vec<u16> = (0..5000u32).map(|i| ((i.wrapping_mul(2654435761) >> 27) as i16 - 16) as u16).collect();
        let stream = huffman16_encode(&symbols);
        let mut x = 99u64;
        for round in 0..3000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mut damaged = stream.clone();
            match round % 3 {
                0 => {
                    let bit = (x >> 20) as usize % (8 * damaged.len());
                    damaged[bit / 8] ^= 1 << (bit % 8);
                }
                1 => damaged.truncate((x >> 20) as usize % damaged.len()),
                _ => damaged[..8].copy_from_slice(&((x >> 40) % 20_000).to_le_bytes()),
            }
            let mut out = Vec::new();
            let _ = huffman16_decode(&damaged, 10_000, &mut out);
            assert!(out.len() <= 2 * 10_000 + 8);
        }
    }

    /// Symbols as sample differences are (a two-sided geometric spread) with a share of wide
    /// values, whose codes are longer than one fast lookup.
    fn sample_differences(n: usize, seed: u64, wide_every: u32) -> Vec<u16> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let r = (x >> 33) as u32;
                if r.is_multiple_of(wide_every) {
                    (r >> 8) as u16
                } else {
                    ((r.trailing_zeros() as i16) * if r & 1 == 0 { 1 } else { -1 }) as u16
                }
            })
            .collect()
    }

    #[test]
    fn huffman_streams_decoded_together_decode_as_single_streams() {
        use crate::zfits::huffman16_decode_many;
        let inputs = [
            sample_differences(30_000, 1, 1000),
            sample_differences(20_011, 2, 20),
            sample_differences(5, 3, 2),
            vec![7u16; 100],
            vec![],
            (0..=65535u16).collect(),
            sample_differences(40_000, 4, 3),
        ];
        let single = |stream: &[u8], n: usize| {
            let mut out = Vec::new();
            huffman16_decode(stream, n, &mut out).map(|()| out)
        };
        for (i, a) in inputs.iter().enumerate() {
            for b in &inputs {
                let (sa, sb) = (huffman16_encode(a), huffman16_encode(b));
                let (mut out_a, mut out_b) = (vec![1u8; 3], Vec::new());
                huffman16_decode_many([&sa, &sb], 70_000, [&mut out_a, &mut out_b]).unwrap();
                assert_eq!(out_a, single(&sa, 70_000).unwrap());
                assert_eq!(out_b, single(&sb, 70_000).unwrap());
                // Three at once (the loop is generic in the number of streams).
                let sc = huffman16_encode(&inputs[(i + 3) % inputs.len()]);
                let mut outs: [Vec<u8>; 3] = Default::default();
                huffman16_decode_many([&sa, &sb, &sc], 70_000, outs.each_mut()).unwrap();
                assert_eq!(outs, [&sa, &sb, &sc].map(|s| single(s, 70_000).unwrap()));
            }
        }
        // Damage to one stream: an error naming it (the single decoder fails too), or exactly
        // what the single decoder says.
        let (sa, sb) = (huffman16_encode(&inputs[0]), huffman16_encode(&inputs[1]));
        let mut x = 5u64;
        for round in 0..500 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mut damaged = sa.clone();
            if round % 2 == 0 {
                let bit = (x >> 20) as usize % (8 * damaged.len());
                damaged[bit / 8] ^= 1 << (bit % 8);
            } else {
                damaged.truncate((x >> 20) as usize % damaged.len());
            }
            let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
            let (first, second) = if round % 4 < 2 { (&damaged, &sb) } else { (&sb, &damaged) };
            match huffman16_decode_many([first, second], 70_000, [&mut out_a, &mut out_b]) {
                Ok(()) => {
                    assert_eq!(out_a, single(first, 70_000).unwrap());
                    assert_eq!(out_b, single(second, 70_000).unwrap());
                }
                Err((which, _)) => {
                    assert_eq!(which, if round % 4 < 2 { 0 } else { 1 });
                    assert!(single(&damaged, 70_000).is_err());
                }
            }
        }
    }

    #[test]
    fn diff_blocks_decode_alone_and_together_as_the_scalar_prefix_sum() {
        use crate::zfits::decode_blocks_into;
        for n in (0..70).chain([1000, 4099]) {
            let words: Vec<i16> = sample_differences(n, n as u64, 50).iter().map(|&v| v as i16).collect();
            let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            let mut chains = vec![vec![Processing::Diff, Processing::Zlib]];
            if n % 3 == 1 {
                bytes.push(0x5a); // an odd byte count (not Huffman16's): the last byte is not a word
            } else {
                chains.push(vec![Processing::Diff, Processing::Huffman16]);
            }
            // The prefix sum computed here, one word at a time.
            let mut expected = Vec::with_capacity(bytes.len());
            let mut sum = 0i16;
            for w in bytes.chunks(2) {
                if let [lo, hi] = w {
                    sum = sum.wrapping_add(i16::from_le_bytes([*lo, *hi]));
                    expected.extend_from_slice(&sum.to_le_bytes());
                } else {
                    expected.push(w[0]);
                }
            }
            for chain in chains {
                // What was encoded is the difference of consecutive words of `expected`.
                let block = encode_block(&expected, &chain);
                let decoded = decode_block(&block, 1 << 20).unwrap();
                assert_eq!(decoded, expected, "{n} {chain:?}");
                let half = 2 * (expected.len() / 4);
                let other = encode_block(&expected[..half], &chain);
                let (mut a, mut b) = (Vec::new(), Vec::new());
                decode_blocks_into([&block, &other], 1 << 20, [&mut a, &mut b]).unwrap();
                assert_eq!((a.as_slice(), b.as_slice()), (&expected[..], &expected[..half]), "{n} {chain:?}");
            }
        }
    }

    #[test]
    fn code_lengths_are_limited() {
        // Fibonacci counts make the deepest unlimited Huffman trees.
        let mut counts = Vec::new();
        let (mut a, mut b) = (1u64, 1u64);
        for s in 0..60u16 {
            counts.push((s, a));
            (a, b) = (b, a + b);
        }
        let lengths = code_lengths(&counts);
        assert!(lengths.iter().all(|&l| l <= MAX_CODE_BITS));
        let kraft: f64 = lengths.iter().map(|&l| 0.5f64.powi(l as i32)).sum();
        assert!(kraft <= 1.0 + 1e-12);
    }

    #[test]
    fn every_processing_chain_round_trips() {
        let bytes: Vec<u8> = (0..4000u32).flat_map(|i| ((i * 7 % 300) as i16 - 100).to_le_bytes()).collect();
        use Processing::*;
        for chain in [
            vec![Raw],
            vec![Zlib],
            vec![Diff, Huffman16],
            vec![SplitHiLo16, Zlib],
            vec![SplitHiLo16, Smoothing, Halfman16],
            vec![Diff, Offset128, SplitHiLo16, Zlib],
            vec![SplitHiLo32, Zlib],
        ] {
            let block = encode_block(&bytes, &chain);
            assert_eq!(decode_block(&block, 1 << 20).unwrap(), bytes, "{chain:?}");
        }
    }
}
