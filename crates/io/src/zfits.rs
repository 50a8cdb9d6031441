//! Reader for CTA "zfits" files (`.fits.fz`): the SST-1M DigiCam R0 files and CTAO R1v1 files.
//!
//! A zfits file is a FITS file whose binary tables hold protobuf messages flattened into
//! columns and compressed tile by tile. This module owns the container, from bytes to
//! per-column message values, without any protobuf or FITS library:
//!
//! * **Container.** Each table HDU is a *catalogue*: one row per tile, one big-endian
//!   `(size, heap offset)` pair per column. The heap starts `max(ZHEAPPTR, NAXIS1·NAXIS2)` bytes
//!   after the data start. A 16-byte `TILE` header precedes each tile's first block; each
//!   column block starts with a little-endian header `{u64 size, u8 ordering, u8 n_procs,
//!   u16 procs[n_procs]}` and its processings are undone in reverse order ([`decode_block`]).
//! * **Processings** (protozfits numbering): raw, smoothing, FACT Huffman16 and halfman16, diff,
//!   double diff, split hi/lo 16 and 32, 128-offset, zlib, zstd, same-values and sparse. Those
//!   are all the real SST-1M and R1v1 files use. LZO, RICE and the lossy codecs are refused by
//!   name, never mis-decoded.
//! * **Flattened messages.** After decompression a column block holds, for the N messages of
//!   the tile: N scalars back to back (a field with `ZFORM` repeat 1), or per message a
//!   little-endian i32 byte count (negative = "packed") followed by the bytes (an `AnyArray` or
//!   a string). The element type is the `ZFORM` letter; a `TZEROn` card only marks it unsigned.
//!
//! Reading is streaming: the file is opened once and each tile is read with one seek when it is
//! needed, so memory is bounded by a couple of tiles whatever the run length (real runs are
//! ~1 GB), unless a reader is asked to keep what it decoded (below).
//!
//! Decoding is most of the cost of a camera event (a samples column is ~6 bits per sample of
//! FACT Huffman over "diff"), and it is shaped by that:
//! * **Huffman16** (`Huffman16`) decodes through a flat table of up to three symbols per
//!   lookup of the next 11 bits (longer codes walk byte tables), with a branchless refill; a
//!   stream is one chain of dependent lookups, so [`DigicamReader`] decodes the samples of
//!   two consecutive tiles in one loop ([`huffman16_decode_many`]), which the processor
//!   overlaps, with BMI2 shifts where the CPU has them.
//! * "diff" is undone with vector prefix sums whose only chain is one add per vector.
//! * Tile buffers are reused: within a reader, and between readers through a process-wide
//!   pool (fresh memory costs a zeroed page per 4 kB).
//! * A first pass over a run's start (r0-dl1's pedestal search) keeps its decoded tiles
//!   within a memory budget ([`DigicamReader::keep_decoded_tiles`]) and hands them to the
//!   reader of the main pass ([`DigicamReader::with_decoded_tiles`]), so they are decoded once.
//!
//! Every structural problem (truncated file, bad catalogue, a block that overruns its tile, a
//! Huffman table that does not decode, a size that does not add up) is an error naming the
//! file, the byte offset and what was expected; no input can make the reader panic or loop.
//!
//! [`DigicamReader`] interprets `DataModel.CameraEvent` tables (SST-1M, 2017 onwards) as
//! [`DigicamEvent`]s with the waveforms in software pixel order.
use crate::fits::{header_block_cards, RawHdu};
use sst1mflow_base::error::{Error, Result};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const BLOCK: u64 = 2880;
const TILE_HEADER: usize = 16;

/// Element type of a column, from its `ZFORM` letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    I16,
    I32,
    I64,
    U8,
    F32,
    F64,
    Bool,
    Char,
}

impl Elem {
    pub fn size(self) -> usize {
        match self {
            Elem::U8 | Elem::Bool | Elem::Char => 1,
            Elem::I16 => 2,
            Elem::I32 | Elem::F32 => 4,
            Elem::I64 | Elem::F64 => 8,
        }
    }
}

/// One column of a compressed table.
#[derive(Clone, Debug)]
pub struct ZColumn {
    pub name: String,
    pub elem: Elem,
    /// The `ZFORM` repeat count: 1 for a scalar field, the maximum size for arrays.
    pub repeat: usize,
    /// `TZEROn` present: the unsigned variant of the element type.
    pub unsigned: bool,
    /// Protobuf field-number path (`TPBIDn`), e.g. `6.1.1`.
    pub field_path: String,
}

impl ZColumn {
    /// Scalars are stored back to back; everything else with a per-message byte count.
    pub fn is_scalar(&self) -> bool {
        self.repeat == 1 && self.elem != Elem::Char
    }
}

/// One compressed table (a message stream) of a zfits file.
#[derive(Clone, Debug)]
pub struct ZTable {
    pub name: String,
    /// `PBFHEAD`: the message type, e.g. `DataModel.CameraEvent`.
    pub message_type: String,
    pub header: RawHdu,
    pub columns: Vec<ZColumn>,
    pub n_rows: u64,
    pub rows_per_tile: u64,
    /// Bytes of one uncompressed row (`ZNAXIS1`), which bounds every decompressed block.
    pub row_bytes: u64,
    /// Per tile, per column: (compressed size, offset from the heap start).
    catalogue: Vec<Vec<(u64, u64)>>,
    heap_start: u64,
    data_start: u64,
    data_end: u64,
}

impl ZTable {
    pub fn n_tiles(&self) -> usize {
        self.catalogue.len()
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// A decompressed tile: each column's bytes for `n_rows` messages.
pub struct Tile {
    pub n_rows: usize,
    pub columns: Vec<Vec<u8>>,
}

/// What a zfits file is read from: a file on disk, or bytes in memory (tests, fuzzing).
pub trait Source: Read + Seek + Send {}
impl<T: Read + Seek + Send> Source for T {}

/// An open zfits file.
pub struct ZFile {
    pub path: PathBuf,
    file: Box<dyn Source>,
    pub file_len: u64,
    pub tables: Vec<ZTable>,
    /// The primary header and any uncompressed table headers, for keys such as `TARGET`.
    pub headers: Vec<RawHdu>,
    /// The stored bytes of the tiles being decoded (one per tile decoded together).
    compressed: Vec<Vec<u8>>,
}

fn read_exact_at(file: &mut dyn Source, at: u64, buf: &mut [u8]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(buf)
}

impl ZFile {
    /// Opens `path` and reads every HDU header and every compressed table's catalogue.
    pub fn open(path: &Path) -> Result<ZFile> {
        let what = path.display().to_string();
        let file = File::open(path).map_err(|e| Error::io(format!("cannot open {what}"), e))?;
        let file_len = file.metadata().map_err(|e| Error::io(format!("cannot read {what}"), e))?.len();
        ZFile::from_source(path, Box::new(file), file_len)
    }

    /// Reads a zfits file held in memory; `name` stands for the file in messages.
    pub fn from_bytes(name: &Path, bytes: Vec<u8>) -> Result<ZFile> {
        let len = bytes.len() as u64;
        ZFile::from_source(name, Box::new(std::io::Cursor::new(bytes)), len)
    }

    fn from_source(path: &Path, mut file: Box<dyn Source>, file_len: u64) -> Result<ZFile> {
        let what = path.display().to_string();
        let bad = |at: u64, msg: String| Error::msg(format!("{what}: not a valid zfits file at byte {at}: {msg}"));
        if file_len == 0 || !file_len.is_multiple_of(BLOCK) {
            return Err(bad(file_len, format!("the size {file_len} is not a multiple of 2880 (truncated?)")));
        }
        let mut tables = Vec::new();
        let mut headers = Vec::new();
        let mut at = 0u64;
        let mut block = vec![0u8; BLOCK as usize];
        while at < file_len {
            let start = at;
            let mut cards = Vec::new();
            loop {
                if at + BLOCK > file_len {
                    return Err(bad(at, "header without an END card (truncated?)".into()));
                }
                read_exact_at(file.as_mut(), at, &mut block)
                    .map_err(|e| Error::io(format!("cannot read {what}"), e))?;
                if at == 0 && !block.starts_with(b"SIMPLE  =") {
                    return Err(bad(0, "the file does not start with a FITS SIMPLE card (not a FITS file)".into()));
                }
                at += BLOCK;
                if header_block_cards(&block, &mut cards).map_err(|m| bad(at - BLOCK, m.into()))? {
                    break;
                }
            }
            let hdu = RawHdu { cards, bytes: Vec::new() };
            let int = |k: &str| -> Result<u64> {
                hdu.number(k)
                    .filter(|v| *v >= 0.0 && v.fract() == 0.0)
                    .map(|v| v as u64)
                    .ok_or_else(|| bad(start, format!("header lacks a valid {k}")))
            };
            let naxis = int("NAXIS")?;
            let mut data = 0u64;
            if naxis > 0 {
                let bitpix = hdu.number("BITPIX").unwrap_or(8.0).abs() as u64 / 8;
                let mut n = 1u64;
                for i in 1..=naxis {
                    n = n.saturating_mul(int(&format!("NAXIS{i}"))?);
                }
                data = bitpix.saturating_mul(n.saturating_add(hdu.number("PCOUNT").unwrap_or(0.0).max(0.0) as u64));
            }
            let padded = data.div_ceil(BLOCK).saturating_mul(BLOCK);
            if at.saturating_add(padded) > file_len {
                return Err(bad(at, format!("{padded} bytes of data announced, {} left (truncated?)", file_len - at)));
            }
            if hdu.string("ZTABLE").is_some() || hdu.raw_is_true("ZTABLE") {
                tables.push(read_table(file.as_mut(), &what, hdu, at, data)?);
            } else {
                headers.push(hdu);
            }
            at += padded;
        }
        Ok(ZFile { path: path.to_path_buf(), file, file_len, tables, headers, compressed: vec![Vec::new()] })
    }

    pub fn table(&self, name: &str) -> Option<usize> {
        self.tables.iter().position(|t| t.name == name)
    }

    /// Reads and decompresses tile `tile` of table `table`.
    pub fn read_tile(&mut self, table: usize, tile: usize) -> Result<Tile> {
        self.read_tile_columns(table, tile, None)
    }

    /// Like [`Self::read_tile`], decompressing only the columns marked in `wanted` (the others
    /// are left empty): a reader skips what it does not use.
    pub fn read_tile_columns(&mut self, table: usize, tile: usize, wanted: Option<&[bool]>) -> Result<Tile> {
        self.read_tile_columns_into(table, tile, wanted, Tile { n_rows: 0, columns: Vec::new() })
    }

    /// Like [`Self::read_tile_columns`], decompressing into the buffers of `reuse` (a tile
    /// done with), so that a stream of tiles allocates once.
    pub fn read_tile_columns_into(
        &mut self,
        table: usize,
        tile: usize,
        wanted: Option<&[bool]>,
        reuse: Tile,
    ) -> Result<Tile> {
        let (tile_start, n_rows) = self.fetch_tile(table, tile, 0)?;
        let t = &self.tables[table];
        let mut buffers = reuse.columns;
        buffers.resize_with(t.columns.len(), Vec::new);
        let mut columns = Vec::with_capacity(t.columns.len());
        for (i, mut bytes) in buffers.into_iter().enumerate() {
            bytes.clear();
            if wanted.is_none_or(|w| w.get(i).copied().unwrap_or(false)) {
                let block = self.block(table, tile, i, 0, tile_start);
                decode_block_into(block, self.limit(table, n_rows), &mut bytes)
                    .and_then(|()| expected_len(&t.columns[i], &bytes, n_rows))
                    .map_err(|m| self.column_error(table, tile, i, &m))?;
            }
            columns.push(bytes);
        }
        Ok(Tile { n_rows, columns })
    }

    /// `N` consecutive tiles of `table` from `first`, decoded together: the Huffman16 streams
    /// of a column are decoded `N` at a time, which keeps a core busier than one stream does
    /// (see [`huffman16_decode_many`]). The same result as `N` calls of
    /// [`Self::read_tile_columns_into`].
    pub fn read_tiles_into<const N: usize>(
        &mut self,
        table: usize,
        first: usize,
        wanted: Option<&[bool]>,
        reuse: [Tile; N],
    ) -> Result<[Tile; N]> {
        let mut starts = [0u64; N];
        let mut rows = [0usize; N];
        if self.compressed.len() < N {
            self.compressed.resize_with(N, Vec::new);
        }
        for k in 0..N {
            (starts[k], rows[k]) = self.fetch_tile(table, first + k, k)?;
        }
        let n_columns = self.tables[table].columns.len();
        // The reused buffers, column by column: [column][tile].
        let mut per_tile = reuse.map(|t| {
            let mut columns = t.columns;
            columns.resize_with(n_columns, Vec::new);
            columns.into_iter()
        });
        let mut columns: Vec<[Vec<u8>; N]> =
            (0..n_columns).map(|_| std::array::from_fn(|k| per_tile[k].next().expect("n_columns"))).collect();
        let limit = self.limit(table, rows.iter().copied().max().unwrap_or(0));
        for (i, outs) in columns.iter_mut().enumerate() {
            outs.iter_mut().for_each(Vec::clear);
            if wanted.is_none_or(|w| w.get(i).copied().unwrap_or(false)) {
                let blocks: [&[u8]; N] = std::array::from_fn(|k| self.block(table, first + k, i, k, starts[k]));
                decode_blocks_into(blocks, limit, outs.each_mut())
                    .map_err(|(k, m)| self.column_error(table, first + k, i, &m))?;
                let column = &self.tables[table].columns[i];
                for (k, (out, &n_rows)) in outs.iter().zip(&rows).enumerate() {
                    expected_len(column, out, n_rows).map_err(|m| self.column_error(table, first + k, i, &m))?;
                }
            }
        }
        Ok(std::array::from_fn(|k| Tile {
            n_rows: rows[k],
            columns: columns.iter_mut().map(|c| std::mem::take(&mut c[k])).collect(),
        }))
    }

    /// Reads tile `tile`'s stored bytes into `compressed[slot]` and checks its TILE header:
    /// (the tile's first byte in the file, its rows).
    fn fetch_tile(&mut self, table: usize, tile: usize, slot: usize) -> Result<(u64, usize)> {
        let what = self.path.display().to_string();
        let t = &self.tables[table];
        let entries = &t.catalogue[tile];
        let n_rows_expected = (t.n_rows - tile as u64 * t.rows_per_tile).min(t.rows_per_tile) as usize;
        let first = entries.iter().map(|e| e.1).min().unwrap_or(0);
        let last = entries.iter().map(|e| e.1 + e.0).max().unwrap_or(0);
        let tile_start = t.heap_start + first - TILE_HEADER as u64;
        let tile_end = t.heap_start + last;
        if t.heap_start + first < t.data_start + TILE_HEADER as u64 || tile_end > t.data_end {
            return Err(Error::msg(format!(
                "{what}: table {} tile {tile}: the catalogue points outside the table's data (bytes {}..{}, data ends at {}; truncated or corrupt)",
                t.name, t.heap_start + first, tile_end, t.data_end
            )));
        }
        let len = (tile_end - tile_start) as usize;
        let buffer = &mut self.compressed[slot];
        buffer.resize(len, 0);
        read_exact_at(self.file.as_mut(), tile_start, buffer)
            .map_err(|e| Error::io(format!("cannot read {what} at byte {tile_start}"), e))?;
        let header = &buffer[..TILE_HEADER];
        if &header[..4] != b"TILE" {
            return Err(Error::msg(format!(
                "{what}: table {} tile {tile}: no TILE marker at byte {tile_start} (corrupt catalogue?)",
                t.name
            )));
        }
        let n_rows = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
        if n_rows != n_rows_expected {
            return Err(Error::msg(format!(
                "{what}: table {} tile {tile} at byte {tile_start}: the tile holds {n_rows} rows, the header announces {n_rows_expected}",
                t.name
            )));
        }
        Ok((tile_start, n_rows))
    }

    /// Column `column`'s block of a tile fetched into `compressed[slot]`.
    fn block(&self, table: usize, tile: usize, column: usize, slot: usize, tile_start: u64) -> &[u8] {
        let t = &self.tables[table];
        let (size, offset) = t.catalogue[tile][column];
        let from = (t.heap_start + offset - tile_start) as usize;
        &self.compressed[slot][from..from + size as usize]
    }

    /// What a column block of a tile of `n_rows` rows may decompress to.
    fn limit(&self, table: usize, n_rows: usize) -> usize {
        (self.tables[table].row_bytes as usize).saturating_mul(n_rows).saturating_add(1 << 16)
    }

    fn column_error(&self, table: usize, tile: usize, column: usize, message: &str) -> Error {
        let t = &self.tables[table];
        let at = t.heap_start + t.catalogue[tile][column].1;
        Error::msg(format!(
            "{}: table {} tile {tile} column {} (block at byte {at}): {message}",
            self.path.display(),
            t.name,
            t.columns[column].name
        ))
    }
}

impl RawHdu {
    fn raw_is_true(&self, key: &str) -> bool {
        self.cards.iter().any(|(k, v)| k == key && v.split('/').next().unwrap_or("").trim() == "T")
    }
}

fn read_table(file: &mut dyn Source, what: &str, hdu: RawHdu, data_start: u64, data_len: u64) -> Result<ZTable> {
    let bad = |msg: String| Error::msg(format!("{what}: zfits table at byte {data_start}: {msg}"));
    let name = hdu.string("EXTNAME").unwrap_or_default();
    let int = |k: &str| -> Result<u64> {
        hdu.number(k)
            .filter(|v| *v >= 0.0 && v.fract() == 0.0)
            .map(|v| v as u64)
            .ok_or_else(|| bad(format!("table {name} lacks a valid {k}")))
    };
    let n_fields = int("TFIELDS")? as usize;
    let row_width = int("NAXIS1")?;
    let n_tiles = int("NAXIS2")?;
    let n_rows = int("ZNAXIS2")?;
    let rows_per_tile = int("ZTILELEN")?;
    let row_bytes = int("ZNAXIS1")?;
    if row_width != 16 * n_fields as u64 {
        return Err(bad(format!("table {name}: NAXIS1 = {row_width}, expected 16 bytes per column × {n_fields}")));
    }
    if rows_per_tile == 0 || n_rows.div_ceil(rows_per_tile) != n_tiles {
        return Err(bad(format!(
            "table {name}: {n_tiles} tiles for {n_rows} rows of {rows_per_tile} per tile do not add up"
        )));
    }
    let mut columns = Vec::with_capacity(n_fields);
    for i in 1..=n_fields {
        let zform = hdu.string(&format!("ZFORM{i}")).ok_or_else(|| bad(format!("table {name} lacks ZFORM{i}")))?;
        let digits: String = zform.chars().take_while(|c| c.is_ascii_digit()).collect();
        let repeat =
            if digits.is_empty() { 1 } else { digits.parse().map_err(|_| bad(format!("ZFORM{i} = {zform:?}")))? };
        let elem = match zform[digits.len()..].chars().next() {
            Some('I') => Elem::I16,
            Some('J') => Elem::I32,
            Some('K') => Elem::I64,
            Some('B') => Elem::U8,
            Some('E') => Elem::F32,
            Some('D') => Elem::F64,
            Some('L') => Elem::Bool,
            Some('A') => Elem::Char,
            _ => return Err(bad(format!("table {name}: ZFORM{i} = {zform:?} is not a known column type"))),
        };
        columns.push(ZColumn {
            name: hdu.string(&format!("TTYPE{i}")).unwrap_or_else(|| format!("col{i}")),
            elem,
            repeat,
            unsigned: hdu.number(&format!("TZERO{i}")).is_some(),
            field_path: hdu.string(&format!("TPBID{i}")).unwrap_or_default(),
        });
    }
    let catalogue_len = row_width * n_tiles;
    if catalogue_len > data_len {
        return Err(bad(format!(
            "table {name}: a catalogue of {catalogue_len} bytes does not fit in {data_len} bytes"
        )));
    }
    let mut raw = vec![0u8; catalogue_len as usize];
    read_exact_at(file, data_start, &mut raw).map_err(|e| Error::io(format!("cannot read {what}"), e))?;
    let heap_start = data_start + hdu.number("ZHEAPPTR").map(|v| v.max(0.0) as u64).unwrap_or(0).max(catalogue_len);
    let data_end = data_start + data_len;
    let mut catalogue = Vec::with_capacity(n_tiles as usize);
    for (tile, row) in raw.chunks(row_width as usize).enumerate() {
        let mut entries = Vec::with_capacity(n_fields);
        for (c, cell) in row.chunks(16).enumerate() {
            let size = i64::from_be_bytes(cell[..8].try_into().expect("8 bytes"));
            let offset = i64::from_be_bytes(cell[8..].try_into().expect("8 bytes"));
            if size < 0 || offset < 0 || heap_start.saturating_add(offset as u64).saturating_add(size as u64) > data_end
            {
                return Err(bad(format!(
                    "table {name} tile {tile} column {}: catalogue entry (size {size}, offset {offset}) points outside the heap (truncated or corrupt)",
                    c + 1
                )));
            }
            entries.push((size as u64, offset as u64));
        }
        // The tile header sits just before the first block.
        let first = entries.iter().map(|e| e.1).min().unwrap_or(0);
        if heap_start + first < data_start + TILE_HEADER as u64 {
            return Err(bad(format!("table {name} tile {tile}: no room for the tile header before offset {first}")));
        }
        catalogue.push(entries);
    }
    Ok(ZTable {
        message_type: hdu.string("PBFHEAD").unwrap_or_default(),
        name,
        header: hdu,
        columns,
        n_rows,
        rows_per_tile,
        row_bytes,
        catalogue,
        heap_start,
        data_start,
        data_end,
    })
}

/// Checks that a decompressed column block holds exactly `n_rows` messages.
fn expected_len(c: &ZColumn, bytes: &[u8], n_rows: usize) -> std::result::Result<(), String> {
    if c.is_scalar() {
        let want = n_rows * c.elem.size();
        if bytes.len() < want || bytes.len() - want > 3 {
            return Err(format!("{} bytes decompressed, {n_rows} values need {want}", bytes.len()));
        }
        return Ok(());
    }
    let mut at = 0usize;
    for row in 0..n_rows {
        let Some(head) = bytes.get(at..at + 4) else {
            return Err(format!("message {row} of {n_rows}: the data end at byte {} before its length", bytes.len()));
        };
        let n = i32::from_le_bytes(head.try_into().expect("4 bytes")).unsigned_abs() as usize;
        at += 4;
        if at + n > bytes.len() {
            return Err(format!("message {row}: {n} bytes announced, {} left", bytes.len() - at));
        }
        at += n;
    }
    // Word-splitting processings pad a column to whole words: up to 3 spare bytes.
    if at > bytes.len() || bytes.len() - at > 3 {
        return Err(format!("{} bytes decompressed, the {n_rows} messages use {at}", bytes.len()));
    }
    Ok(())
}

impl Tile {
    /// Bytes its column buffers hold.
    pub fn bytes(&self) -> usize {
        self.columns.iter().map(Vec::capacity).sum()
    }

    /// The scalar values of column `c` as little-endian words of `size` bytes.
    pub fn scalars<'a>(&'a self, c: usize, size: usize) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.columns[c].chunks_exact(size)
    }

    /// Where message `row`'s array (its 4-byte length) starts in array column `c`.
    fn array_start(&self, c: usize, row: usize) -> usize {
        let mut at = 0;
        for _ in 0..row {
            at += 4 + self.array_len_at(c, at);
        }
        at
    }

    /// The byte length of the array whose 4-byte length is at `at` in column `c`.
    fn array_len_at(&self, c: usize, at: usize) -> usize {
        i32::from_le_bytes(self.columns[c][at..at + 4].try_into().expect("checked")).unsigned_abs() as usize
    }

    /// The array whose 4-byte length is at `at` in column `c`.
    fn array_from(&self, c: usize, at: usize) -> &[u8] {
        &self.columns[c][at + 4..at + 4 + self.array_len_at(c, at)]
    }

    /// The bytes of message `row` in array column `c` (lengths checked when the tile was read).
    pub fn array(&self, c: usize, row: usize) -> &[u8] {
        self.array_from(c, self.array_start(c, row))
    }

    /// The per-message byte strings of an array column.
    pub fn arrays(&self, c: usize) -> Vec<&[u8]> {
        let bytes = &self.columns[c];
        let mut out = Vec::with_capacity(self.n_rows);
        let mut at = 0;
        for _ in 0..self.n_rows {
            let n = i32::from_le_bytes(bytes[at..at + 4].try_into().expect("checked")).unsigned_abs() as usize;
            out.push(&bytes[at + 4..at + 4 + n]);
            at += 4 + n;
        }
        out
    }
}

/// Processing codes of zfits column blocks (protozfits `FitsDefs.h`).
mod proc {
    pub const RAW: u16 = 0;
    pub const SMOOTHING: u16 = 1;
    pub const HUFFMAN16: u16 = 2;
    pub const DIFF: u16 = 3;
    pub const DOUBLE_DIFF: u16 = 4;
    pub const SPLIT_HI_LO16: u16 = 5;
    pub const ZLIB: u16 = 7;
    pub const LZO: u16 = 9;
    pub const RICE: u16 = 10;
    pub const HALFMAN16: u16 = 12;
    pub const SPLIT_HI_LO32: u16 = 14;
    pub const OFFSET128: u16 = 16;
    pub const SAME_VALUES: u16 = 17;
    pub const SPARSE: u16 = 19;

    pub fn name(code: u16) -> &'static str {
        match code {
            0 => "raw",
            1 => "smoothing",
            2 => "huffman16",
            3 => "diff",
            4 => "doublediff",
            5 => "splithilo16",
            6 => "hufftimes4",
            7 => "zlib",
            8 => "huffbyrow",
            9 => "lzo",
            10 => "rice",
            11 => "huffman8",
            12 => "halfman16",
            13 => "halfman8",
            14 => "splithilo32",
            15 => "localdiff",
            16 => "128offset",
            17 => "samevalues",
            18 => "lossyfloats",
            19 => "sparse",
            20 => "halfdiff32",
            21 => "lossyint16",
            22 => "lossyint32",
            23 => "zstd",
            _ => "unknown",
        }
    }
}

const ZSTD: u16 = 23;

/// Undoes the processings of one column block (header included) and returns the bytes.
/// `limit` bounds every decompressed size (the tile's uncompressed size plus slack), so a
/// corrupt size field cannot make the reader allocate without bound.
pub fn decode_block(block: &[u8], limit: usize) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    decode_block_into(block, limit, &mut out)?;
    Ok(out)
}

/// [`decode_block`] into `out`, whose allocation is reused (a tile's samples column is 13 MB:
/// allocating it per tile costs a page fault per 4 kB, several percent of the decoding).
pub fn decode_block_into(block: &[u8], limit: usize, out: &mut Vec<u8>) -> std::result::Result<(), String> {
    out.clear();
    let (procs, payload) = block_parts(block)?;
    if payload.is_empty() {
        return Ok(());
    }
    *out = undo_processings(&procs, payload, limit, None, std::mem::take(out))?;
    Ok(())
}

/// `N` blocks (of the same column in consecutive tiles) decoded together: when all were
/// Huffman16-coded last, their streams are decoded in one loop ([`huffman16_decode_many`]).
/// An error says which block (0..N) it is in.
pub fn decode_blocks_into<const N: usize>(
    blocks: [&[u8]; N],
    limit: usize,
    mut outs: [&mut Vec<u8>; N],
) -> std::result::Result<(), (usize, String)> {
    let mut parts = Vec::with_capacity(N);
    for (k, block) in blocks.iter().enumerate() {
        parts.push(block_parts(block).map_err(|m| (k, m))?);
    }
    fn stream(payload: &[u8]) -> Option<&[u8]> {
        let n = read_u32(payload, 0).ok()? as usize;
        payload.get(4..4 + n)
    }
    let streams: Vec<&[u8]> = parts
        .iter()
        .filter(|(procs, _)| procs.last() == Some(&proc::HUFFMAN16))
        .filter_map(|(_, payload)| stream(payload))
        .collect();
    if let Ok(streams) = <[&[u8]; N]>::try_from(streams) {
        let mut firsts: [Vec<u8>; N] = std::array::from_fn(|_| Vec::new());
        for (first, out) in firsts.iter_mut().zip(outs.iter_mut()) {
            std::mem::swap(first, &mut **out);
        }
        huffman16_decode_many(streams, limit / 2, firsts.each_mut())?;
        for (k, ((first, out), (procs, payload))) in firsts.into_iter().zip(outs).zip(&parts).enumerate() {
            *out = undo_processings(&procs[..procs.len() - 1], payload, limit, Some(first), Vec::new())
                .map_err(|m| (k, m))?;
        }
        return Ok(());
    }
    for (k, (block, out)) in blocks.iter().zip(outs).enumerate() {
        decode_block_into(block, limit, out).map_err(|m| (k, m))?;
    }
    Ok(())
}

/// A block's processings (in the order they were applied) and payload, header checked.
fn block_parts(block: &[u8]) -> std::result::Result<(Vec<u16>, &[u8]), String> {
    if block.len() < 10 {
        return Err(format!("a block of {} bytes is shorter than its 10-byte header", block.len()));
    }
    let size = u64::from_le_bytes(block[..8].try_into().expect("8 bytes"));
    let n_procs = block[9] as usize;
    let head = 10 + 2 * n_procs;
    if size != block.len() as u64 || head > block.len() {
        return Err(format!(
            "the block header announces {size} bytes and {n_procs} processings, the catalogue {} bytes",
            block.len()
        ));
    }
    let procs: Vec<u16> = block[10..head].chunks(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
    Ok((procs, &block[head..]))
}

/// Undoes `procs` (last applied first) on `payload`, or on `data` when the processings after
/// `procs` were undone already. `spare` is an allocation to reuse.
fn undo_processings(
    procs: &[u16],
    payload: &[u8],
    limit: usize,
    mut data: Option<Vec<u8>>,
    mut spare: Vec<u8>,
) -> std::result::Result<Vec<u8>, String> {
    if let Some(d) = &data {
        if d.len() > limit {
            return Err(format!("huffman16 decompressed to {} bytes, more than the tile can hold", d.len()));
        }
    }
    for &p in procs.iter().rev() {
        // The first processing undone reads the stored payload; the following ones work on the
        // previous result (protozfits applies zlib/zstd/Huffman only first).
        let input: &[u8] = data.as_deref().unwrap_or(payload);
        let out = match p {
            proc::RAW => {
                spare.clear();
                spare.extend_from_slice(input);
                std::mem::take(&mut spare)
            }
            proc::ZLIB => inflate(input, limit)?,
            ZSTD => unzstd(input, limit)?,
            proc::HUFFMAN16 => {
                let n = read_u32(input, 0)? as usize;
                let stream = input.get(4..4 + n).ok_or("huffman16: the stream is shorter than announced")?;
                let mut out = std::mem::take(&mut spare);
                out.clear();
                huffman16_decode(stream, limit / 2, &mut out)?;
                out
            }
            proc::HALFMAN16 => {
                let n0 = read_u32(input, 0)? as usize;
                let n1 = read_u32(input, 4)? as usize;
                let s0 = input.get(8..8 + n0).ok_or("halfman16: the first stream is shorter than announced")?;
                let s1 =
                    input.get(8 + n0..8 + n0 + n1).ok_or("halfman16: the second stream is shorter than announced")?;
                let mut bytes = Vec::new();
                huffman16_decode(s0, limit / 2, &mut bytes)?;
                huffman16_decode(s1, limit / 2, &mut bytes)?;
                bytes
            }
            proc::SMOOTHING => {
                let mut v = data.take().ok_or("smoothing cannot be the first processing undone")?;
                let n = v.len() / 2;
                for j in 2..n {
                    let a = i16::from_le_bytes([v[2 * j - 2], v[2 * j - 1]]) as i32;
                    let b = i16::from_le_bytes([v[2 * j - 4], v[2 * j - 3]]) as i32;
                    let x = i16::from_le_bytes([v[2 * j], v[2 * j + 1]]).wrapping_add(((a + b) / 2) as i16);
                    v[2 * j..2 * j + 2].copy_from_slice(&x.to_le_bytes());
                }
                v
            }
            proc::DIFF | proc::DOUBLE_DIFF => {
                let mut v = data.take().ok_or("diff cannot be the first processing undone")?;
                let passes = if p == proc::DIFF { 1 } else { 2 };
                for _ in 0..passes {
                    undo_diff_i16(&mut v);
                }
                v
            }
            proc::OFFSET128 => {
                let mut v = data.take().ok_or("128offset cannot be the first processing undone")?;
                for w in v.chunks_exact_mut(2) {
                    let x = i16::from_le_bytes([w[0], w[1]]).wrapping_sub(128);
                    w.copy_from_slice(&x.to_le_bytes());
                }
                v
            }
            proc::SPLIT_HI_LO16 => {
                if !input.len().is_multiple_of(2) {
                    return Err(format!("splithilo16 on {} bytes, not a multiple of 2", input.len()));
                }
                let half = input.len() / 2;
                let mut v = vec![0u8; input.len()];
                for k in 0..half {
                    v[2 * k] = input[k];
                    v[2 * k + 1] = input[half + k];
                }
                v
            }
            proc::SPLIT_HI_LO32 => {
                if !input.len().is_multiple_of(4) {
                    return Err(format!("splithilo32 on {} bytes, not a multiple of 4", input.len()));
                }
                let half = input.len() / 2;
                let mut v = vec![0u8; input.len()];
                for k in 0..half / 2 {
                    v[4 * k..4 * k + 2].copy_from_slice(&input[2 * k..2 * k + 2]);
                    v[4 * k + 2..4 * k + 4].copy_from_slice(&input[half + 2 * k..half + 2 * k + 2]);
                }
                v
            }
            proc::SAME_VALUES => {
                let n = read_u32(input, 0)? as usize;
                if (2 * n + 1) * 4 != input.len() {
                    return Err(format!("samevalues: {n} runs need {} bytes, found {}", (2 * n + 1) * 4, input.len()));
                }
                let mut v = Vec::new();
                for i in 0..n {
                    let count = read_u32(input, 4 + 8 * i)? as usize;
                    let value = &input[8 + 8 * i..12 + 8 * i];
                    if v.len() + 4 * count > limit {
                        return Err("samevalues: more data than the tile can hold".into());
                    }
                    for _ in 0..count {
                        v.extend_from_slice(value);
                    }
                }
                v
            }
            proc::SPARSE => {
                if input.len() < 8 {
                    return Err("sparse: block shorter than its 8-byte header".into());
                }
                let default = &input[0..4];
                let n = read_u32(input, 4)? as usize;
                if (n + 2) * 4 != input.len() {
                    return Err(format!("sparse: {n} values need {} bytes, found {}", (n + 2) * 4, input.len()));
                }
                let value = |i: usize| &input[8 + 4 * i..12 + 4 * i];
                let mut v = Vec::new();
                let mut i = 0;
                while i < n {
                    let run = i32::from_le_bytes(value(i).try_into().expect("4 bytes")).max(0) as usize;
                    if v.len() + 4 * run > limit {
                        return Err("sparse: more data than the tile can hold".into());
                    }
                    for _ in 0..run {
                        v.extend_from_slice(default);
                    }
                    i += 1;
                    if i >= n {
                        break;
                    }
                    v.extend_from_slice(value(i));
                    i += 1;
                }
                v
            }
            proc::LZO | proc::RICE | 6 | 8 | 11 | 13 | 15 | 18 | 20 | 21 | 22 => {
                return Err(format!("processing {p} ({}) is not supported", proc::name(p)))
            }
            other => return Err(format!("unknown processing code {other}")),
        };
        if out.len() > limit {
            return Err(format!("{} decompressed to {} bytes, more than the tile can hold", proc::name(p), out.len()));
        }
        data = Some(out);
    }
    Ok(match data {
        Some(d) => d,
        None => {
            spare.clear();
            spare.extend_from_slice(payload);
            spare
        }
    })
}

/// Undoes protozfits' "diff" on little-endian i16 words: each becomes the wrapping sum of
/// itself and all before it. A vector of words gets its own prefix sums first, independently
/// of the others; only the running total (one add per vector) chains them, so the loop runs at
/// the processor's throughput rather than at the latency of a carry. AVX2 where the CPU has
/// it (16 words per step), else SSE2 (part of every x86-64, 8 words).
fn undo_diff_i16(v: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2 is used only where the CPU has it; SSE2 is baseline on x86-64.
    let vectors = unsafe {
        if std::arch::is_x86_feature_detected!("avx2") {
            undo_diff_avx2(v)
        } else {
            undo_diff_sse2(v)
        }
    };
    #[cfg(not(target_arch = "x86_64"))]
    let vectors = (0i16, 0usize);
    undo_diff_rest(v, vectors);
}

/// The scalar end of [`undo_diff_i16`] after the vector loop's (last sum, bytes done).
fn undo_diff_rest(v: &mut [u8], (prev, done): (i16, usize)) {
    let mut prev = prev;
    for w in v[done..].chunks_exact_mut(2) {
        prev = prev.wrapping_add(i16::from_le_bytes([w[0], w[1]]));
        w.copy_from_slice(&prev.to_le_bytes());
    }
}

/// [`undo_diff_i16`] over the whole 16-byte blocks of `v`: (the last sum, the bytes done).
#[cfg(target_arch = "x86_64")]
unsafe fn undo_diff_sse2(v: &mut [u8]) -> (i16, usize) {
    use std::arch::x86_64::*;
    let blocks = v.len() / 16;
    let mut total = _mm_setzero_si128();
    let base = v.as_mut_ptr();
    for k in 0..blocks {
        // SAFETY: a 16-byte load and store at `16 * k` with k < blocks, inside `v`.
        let at = base.add(16 * k) as *mut __m128i;
        let mut x = _mm_loadu_si128(at);
        x = _mm_add_epi16(x, _mm_slli_si128::<2>(x));
        x = _mm_add_epi16(x, _mm_slli_si128::<4>(x));
        x = _mm_add_epi16(x, _mm_slli_si128::<8>(x));
        _mm_storeu_si128(at, _mm_add_epi16(x, total));
        let top = _mm_shufflehi_epi16::<0xFF>(x);
        total = _mm_add_epi16(total, _mm_unpackhi_epi64(top, top));
    }
    (_mm_extract_epi16::<0>(total) as i16, 16 * blocks)
}

/// [`undo_diff_i16`] over the whole 32-byte blocks of `v`: (the last sum, the bytes done).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn undo_diff_avx2(v: &mut [u8]) -> (i16, usize) {
    use std::arch::x86_64::*;
    let blocks = v.len() / 32;
    let mut total = _mm256_setzero_si256();
    let base = v.as_mut_ptr();
    for k in 0..blocks {
        // SAFETY: a 32-byte load and store at `32 * k` with k < blocks, inside `v`.
        let at = base.add(32 * k) as *mut __m256i;
        let mut x = _mm256_loadu_si256(at);
        // Prefix sums within each 128-bit lane, then the low lane's sum added to the high lane.
        x = _mm256_add_epi16(x, _mm256_slli_si256::<2>(x));
        x = _mm256_add_epi16(x, _mm256_slli_si256::<4>(x));
        x = _mm256_add_epi16(x, _mm256_slli_si256::<8>(x));
        let lane_top = _mm256_shufflehi_epi16::<0xFF>(x);
        let lane_sum = _mm256_unpackhi_epi64(lane_top, lane_top);
        x = _mm256_add_epi16(x, _mm256_permute2x128_si256::<0x08>(lane_sum, lane_sum));
        _mm256_storeu_si256(at, _mm256_add_epi16(x, total));
        let top = _mm256_shufflehi_epi16::<0xFF>(x);
        let top = _mm256_unpackhi_epi64(top, top);
        total = _mm256_add_epi16(total, _mm256_permute2x128_si256::<0x11>(top, top));
    }
    (_mm_extract_epi16::<0>(_mm256_castsi256_si128(total)) as i16, 32 * blocks)
}

fn read_u32(b: &[u8], at: usize) -> std::result::Result<u32, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
        .ok_or_else(|| format!("a 4-byte size at offset {at} lies beyond the {} bytes of the block", b.len()))
}

fn inflate(input: &[u8], limit: usize) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut d = flate2::read::ZlibDecoder::new(input).take(limit as u64 + 1);
    d.read_to_end(&mut out).map_err(|e| format!("zlib: {e}"))?;
    Ok(out)
}

fn unzstd(input: &[u8], limit: usize) -> std::result::Result<Vec<u8>, String> {
    let d = ruzstd::decoding::StreamingDecoder::new(input).map_err(|e| format!("zstd: {e}"))?;
    let mut out = Vec::new();
    d.take(limit as u64 + 1).read_to_end(&mut out).map_err(|e| format!("zstd: {e}"))?;
    Ok(out)
}

/// Code lengths decoded by one flat-table lookup. 11 bits keep a stream's table at 16 kB, so
/// that the two tables of a decoded pair of tiles stay in a 48 kB L1 cache together.
const FAST_BITS: u32 = 11;

/// One entry of a Huffman lookup table: a leaf (symbol and code length within this byte) or a
/// link to the table of the next 8 bits.
#[derive(Clone, Copy, Default)]
struct HuffEntry {
    leaf: bool,
    n_bits: u8,
    symbol: u16,
    /// Index of the next table + 1 (0: none).
    next: u32,
}

/// Follows the byte tables for the code at the bottom of `buf` (LSB first), 8 bits per level,
/// using at most `available` bits: (symbol, code length), or None for an unknown or too long code.
#[inline(always)]
fn walk_huffman_tables(tables: &[[HuffEntry; 256]], buf: u64, available: u32) -> Option<(u16, u32)> {
    let (mut table, mut shift) = (0usize, 0u32);
    loop {
        let entry = tables[table][((buf >> shift) & 0xff) as usize];
        if entry.leaf {
            return Some((entry.symbol, shift + entry.n_bits as u32));
        }
        if entry.next == 0 || shift + 8 > available.min(48) {
            return None;
        }
        table = entry.next as usize - 1;
        shift += 8;
    }
}

/// A parsed FACT Huffman16 stream: u64 number of symbols, u64 number of codes, per code
/// (u16 symbol, u8 length, ceil(length/8) code bytes), then the bit stream read LSB first.
/// A single code means "all values are this symbol".
struct Huffman16<'a> {
    n_symbols: usize,
    /// 256-entry tables, 8 bits per level: every code, for the careful decoding.
    tables: Vec<[HuffEntry; 256]>,
    /// Up to three symbols per lookup of the next FAST_BITS bits (decoding is a chain of
    /// dependent lookups, so shortening the chain is what pays). Entry: the bits used in bits
    /// 0..6 (so that a shift by the entry, which takes its low 6 bits, consumes them), the
    /// symbols in 8..56, their count in 61..64 (one shift gives it); 0 means "a code longer
    /// than FAST_BITS". Storing the entry's bits 8..64 writes the symbols and garbage past
    /// them, which the next store or the final length covers.
    multi: Box<[u64; 1 << FAST_BITS]>,
    n_codes: u64,
    stream: &'a [u8],
}

impl<'a> Huffman16<'a> {
    fn parse(input: &'a [u8], max_symbols: usize) -> std::result::Result<Huffman16<'a>, String> {
        let u64_at = |at: usize| -> std::result::Result<u64, String> {
            input
                .get(at..at + 8)
                .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
                .ok_or_else(|| format!("huffman16: the stream ends at byte {} inside its header", input.len()))
        };
        let n_symbols = u64_at(0)?;
        if n_symbols > max_symbols as u64 {
            return Err(format!("huffman16: {n_symbols} symbols announced, at most {max_symbols} fit in the tile"));
        }
        let n_codes = u64_at(8)?;
        if n_codes > 65536 {
            return Err(format!("huffman16: {n_codes} codes announced for 16-bit symbols"));
        }
        let mut tables: Vec<[HuffEntry; 256]> = vec![[HuffEntry::default(); 256]];
        let mut codes: Vec<(u16, u8, u64)> = Vec::with_capacity(n_codes as usize);
        let mut at = 16usize;
        let truncated = |at: usize| format!("huffman16: the code table ends at byte {at} (truncated)");
        for _ in 0..n_codes {
            let sym = input.get(at..at + 2).ok_or_else(|| truncated(at))?;
            let symbol = u16::from_le_bytes([sym[0], sym[1]]);
            at += 2;
            if n_codes == 1 {
                for e in tables[0].iter_mut() {
                    *e = HuffEntry { leaf: true, n_bits: 0, symbol, next: 0 };
                }
                break;
            }
            let n_bits = *input.get(at).ok_or_else(|| truncated(at))?;
            at += 1;
            let n_bytes = (n_bits as usize).div_ceil(8);
            if n_bytes > 8 {
                return Err(format!("huffman16: a code of {n_bits} bits"));
            }
            let code_bytes = input.get(at..at + n_bytes).ok_or_else(|| truncated(at))?;
            at += n_bytes;
            let mut bits = 0u64;
            for (i, b) in code_bytes.iter().enumerate() {
                bits |= (*b as u64) << (8 * i);
            }
            if n_bits < 64 {
                bits &= (1u64 << n_bits) - 1;
            }
            codes.push((symbol, n_bits, bits));
            // Walk down one table per full byte of code, then fill every entry that starts with
            // the remaining bits.
            let mut table = 0usize;
            let mut n = n_bits as u32;
            while n > 8 {
                let key = (bits & 0xff) as usize;
                let next = tables[table][key].next;
                table = if next == 0 {
                    tables.push([HuffEntry::default(); 256]);
                    let index = tables.len() - 1;
                    tables[table][key].next = index as u32 + 1;
                    index
                } else {
                    next as usize - 1
                };
                bits >>= 8;
                n -= 8;
            }
            let fill = 1usize << (8 - n);
            for i in 0..fill {
                let key = (bits as usize | (i << n)) & 0xff;
                let e = &mut tables[table][key];
                e.leaf = true;
                e.symbol = symbol;
                e.n_bits = n as u8;
            }
        }
        // Codes of up to FAST_BITS bits in a flat table indexed by the next bits, then up to
        // three of them per entry of `multi`.
        let mut fast = vec![0u32; 1 << FAST_BITS];
        for &(symbol, n_bits, bits) in &codes {
            if n_bits == 0 || n_bits as u32 > FAST_BITS {
                continue;
            }
            for i in 0..1usize << (FAST_BITS - n_bits as u32) {
                fast[(bits as usize | (i << n_bits)) & ((1 << FAST_BITS) - 1)] = ((symbol as u32) << 8) | n_bits as u32;
            }
        }
        let mut multi = Box::new([0u64; 1 << FAST_BITS]);
        for (idx, entry) in multi.iter_mut().enumerate() {
            let (mut used, mut count, mut symbols) = (0u32, 0u64, 0u64);
            while count < 3 {
                let e = fast[idx >> used];
                let len = e & 0xff;
                if e == 0 || used + len > FAST_BITS {
                    break;
                }
                symbols |= ((e >> 8) as u64) << (16 * count);
                used += len;
                count += 1;
            }
            if count > 0 {
                *entry = used as u64 | symbols << 8 | count << 61;
            }
        }
        Ok(Huffman16 { n_symbols: n_symbols as usize, tables, multi, n_codes, stream: &input[at..] })
    }
}

/// Where the decoding of one stream stands: the bit buffer (LSB first), the next stream byte
/// to load and the symbols written. The bits decoded are those loaded less those buffered.
#[derive(Default)]
struct HuffCursor {
    buf: u64,
    n_buf: u32,
    pos: usize,
    written: usize,
}

type Spare<'o> = &'o mut [std::mem::MaybeUninit<u8>];

#[inline(always)]
fn put_u16(dst: Spare, at: usize, value: u16) {
    let slot = &mut dst[at..at + 2];
    // SAFETY: `slot` is 2 writable bytes (bounds checked above); the store is unaligned.
    unsafe { (slot.as_mut_ptr() as *mut u16).write_unaligned(value.to_le()) }
}

impl HuffCursor {
    #[inline(always)]
    fn refill(&mut self, stream: &[u8]) {
        let word = u64::from_le_bytes(stream[self.pos..self.pos + 8].try_into().expect("8 bytes"));
        self.buf |= word << self.n_buf;
        self.pos += ((63 - self.n_buf) >> 3) as usize;
        self.n_buf |= 56;
    }

    #[inline(never)]
    fn long_code(&mut self, h: &Huffman16, dst: Spare) -> bool {
        if self.pos + 8 > h.stream.len() {
            return false;
        }
        self.refill(h.stream);
        let Some((symbol, len)) = walk_huffman_tables(&h.tables, self.buf, self.n_buf.saturating_sub(8)) else {
            return false;
        };
        if len > self.n_buf {
            return false;
        }
        put_u16(dst, 2 * self.written, symbol);
        self.written += 1;
        self.buf >>= len;
        self.n_buf -= len;
        true
    }

    /// Bits of the stream decoded so far.
    fn consumed(&self) -> u64 {
        8 * self.pos as u64 - self.n_buf as u64
    }

    /// The careful loop: one symbol at a time, zeros past the end of the stream (as the C++
    /// reader's two-byte peek), stopping when the input is used up.
    fn finish(&mut self, h: &Huffman16, dst: Spare) -> std::result::Result<(), String> {
        fast_streams([h], [&mut *self], [&mut *dst]);
        let total_bits = h.stream.len() as u64 * 8;
        while self.written < h.n_symbols && self.consumed() < total_bits {
            while self.n_buf <= 56 {
                self.buf |= (*h.stream.get(self.pos).unwrap_or(&0) as u64) << self.n_buf;
                self.n_buf += 8;
                self.pos += 1;
            }
            let Some((symbol, len)) = walk_huffman_tables(&h.tables, self.buf, 56) else {
                return Err(format!("huffman16: unknown bit code at bit {} of the stream", self.consumed()));
            };
            put_u16(dst, 2 * self.written, symbol);
            self.written += 1;
            self.buf >>= len;
            self.n_buf -= len;
        }
        if self.written != h.n_symbols {
            return Err(format!("huffman16: the stream ended after {} of {} symbols", self.written, h.n_symbols));
        }
        Ok(())
    }
}

/// The fast loop over `N` independent streams at once (each a chain of dependent lookups,
/// which the processor overlaps when they share a loop), until one of them nears its end or
/// meets a code the fast path cannot decode; [`HuffCursor::finish`] does the rest.
///
/// A round per stream: a branchless refill (it tops the buffer up to 56..63 bits every round:
/// a data-dependent refill branch mispredicts about every other symbol), then four lookups of
/// at most FAST_BITS bits, each storing four symbol slots whatever it decoded (the count
/// advances by the right number). A code longer than FAST_BITS stops that stream's round; it
/// is decoded through the byte tables ([`HuffCursor::long_code`]) before the next round. The
/// state lives in locals (registers) during the loop, and with BMI2 the shifts are one
/// instruction (`shrx`), which shortens the chain of every lookup.
fn fast_streams<const N: usize>(h: [&Huffman16; N], cursors: [&mut HuffCursor; N], dst: [Spare; N]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("bmi2") {
        // SAFETY: the CPU has BMI2 (checked just above).
        return unsafe { fast_streams_bmi2(h, cursors, dst) };
    }
    fast_streams_impl(h, cursors, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi2")]
unsafe fn fast_streams_bmi2<const N: usize>(h: [&Huffman16; N], cursors: [&mut HuffCursor; N], dst: [Spare; N]) {
    fast_streams_impl(h, cursors, dst)
}

#[inline(always)]
fn fast_streams_impl<const N: usize>(h: [&Huffman16; N], cursors: [&mut HuffCursor; N], dst: [Spare; N]) {
    const MASK: u64 = (1 << FAST_BITS) - 1;
    let mut buf: [u64; N] = std::array::from_fn(|k| cursors[k].buf);
    let mut n_buf: [u32; N] = std::array::from_fn(|k| cursors[k].n_buf);
    let mut pos: [usize; N] = std::array::from_fn(|k| cursors[k].pos);
    let mut written: [usize; N] = std::array::from_fn(|k| cursors[k].written);
    let out: [*mut u8; N] = std::array::from_fn(|k| {
        assert!(dst[k].len() >= 2 * h[k].n_symbols + 8, "room for the fast loop's stores");
        dst[k].as_mut_ptr() as *mut u8
    });
    'rounds: loop {
        for k in 0..N {
            if !(written[k] + 16 <= h[k].n_symbols && pos[k] + 8 <= h[k].stream.len()) {
                break 'rounds;
            }
        }
        for k in 0..N {
            let word = u64::from_le_bytes(h[k].stream[pos[k]..pos[k] + 8].try_into().expect("8 bytes"));
            buf[k] |= word << n_buf[k];
            pos[k] += ((63 - n_buf[k]) >> 3) as usize;
            n_buf[k] |= 56;
        }
        let mut long = [false; N];
        for _ in 0..4 {
            for k in 0..N {
                if long[k] {
                    continue;
                }
                let e = h[k].multi[(buf[k] & MASK) as usize];
                if e == 0 {
                    long[k] = true;
                    continue;
                }
                // SAFETY: the round started with written + 16 <= n_symbols and stores at
                // most 13 symbols, each store 8 bytes from the next symbol's slot, so every
                // store ends within the 2 × n_symbols + 8 bytes of `dst[k]`.
                unsafe { (out[k].add(2 * written[k]) as *mut u64).write_unaligned((e >> 8).to_le()) };
                written[k] += (e >> 61) as usize;
                buf[k] = buf[k].wrapping_shr(e as u32);
                n_buf[k] -= (e & 63) as u32;
            }
        }
        for k in 0..N {
            if long[k] {
                let c = &mut *cursors[k];
                (c.buf, c.n_buf, c.pos, c.written) = (buf[k], n_buf[k], pos[k], written[k]);
                let decoded = c.long_code(h[k], dst[k]);
                (buf[k], n_buf[k], pos[k], written[k]) = (c.buf, c.n_buf, c.pos, c.written);
                if !decoded {
                    break 'rounds;
                }
            }
        }
    }
    for k in 0..N {
        let c = &mut *cursors[k];
        (c.buf, c.n_buf, c.pos, c.written) = (buf[k], n_buf[k], pos[k], written[k]);
    }
}

/// Decodes the symbols of `h` after the bytes in `out`, or returns false when the stream needs
/// no bit decoding (then `out` already holds them).
fn huffman16_trivial(h: &Huffman16, out: &mut Vec<u8>) -> std::result::Result<bool, String> {
    if !h.stream.is_empty() {
        return Ok(false);
    }
    if h.n_codes == 0 && h.n_symbols > 0 {
        return Err("huffman16: symbols announced without any code".into());
    }
    let symbol = h.tables[0][0].symbol.to_le_bytes();
    out.reserve(2 * h.n_symbols);
    for _ in 0..h.n_symbols {
        out.extend_from_slice(&symbol);
    }
    Ok(true)
}

/// Decodes one FACT Huffman16 stream (see `Huffman16`), appending the symbols to `out`.
/// `max_symbols` bounds the output.
pub fn huffman16_decode(input: &[u8], max_symbols: usize, out: &mut Vec<u8>) -> std::result::Result<(), String> {
    let h = Huffman16::parse(input, max_symbols)?;
    if huffman16_trivial(&h, out)? {
        return Ok(());
    }
    let start = out.len();
    // Symbols are written into the spare capacity (no zero-filling of the ~13 MB a samples
    // column takes), with room for the fast loop's four-slot stores; the length is then set to
    // what was written.
    out.reserve(2 * h.n_symbols + 8);
    let mut cursor = HuffCursor::default();
    cursor.finish(&h, &mut out.spare_capacity_mut()[..2 * h.n_symbols + 8])?;
    // SAFETY: `finish` wrote every byte of the first 2 × written spare bytes (each symbol's two
    // bytes, in order) and succeeded only with written == n_symbols; they lie within the
    // reserved capacity.
    unsafe { out.set_len(start + 2 * cursor.written) };
    Ok(())
}

/// Decodes `N` independent Huffman16 streams together into `outs` (replacing their
/// contents). A stream's decoding is one chain of dependent table lookups; running `N` chains
/// in the same loop lets the processor overlap them, so one core decodes several times the
/// symbols per second of one stream. An error says which stream (0..N) it is in.
pub fn huffman16_decode_many<const N: usize>(
    streams: [&[u8]; N],
    max_symbols: usize,
    mut outs: [&mut Vec<u8>; N],
) -> std::result::Result<(), (usize, String)> {
    let mut parsed = Vec::with_capacity(N);
    for (k, stream) in streams.iter().enumerate() {
        parsed.push(Huffman16::parse(stream, max_symbols).map_err(|m| (k, m))?);
    }
    outs.iter_mut().for_each(|o| o.clear());
    // A stream of one symbol repeated has no bits to decode: each on its own.
    if parsed.iter().any(|h| h.stream.is_empty()) {
        for (k, (stream, out)) in streams.iter().zip(outs).enumerate() {
            huffman16_decode(stream, max_symbols, out).map_err(|m| (k, m))?;
        }
        return Ok(());
    }
    let h: [&Huffman16; N] = std::array::from_fn(|k| &parsed[k]);
    let mut cursors: [HuffCursor; N] = std::array::from_fn(|_| HuffCursor::default());
    {
        let mut spare = Vec::with_capacity(N);
        for (out, h) in outs.iter_mut().zip(&h) {
            out.reserve(2 * h.n_symbols + 8);
            spare.push(&mut out.spare_capacity_mut()[..2 * h.n_symbols + 8]);
        }
        let Ok(mut dst) = <[Spare; N]>::try_from(spare) else { unreachable!("N outputs") };
        fast_streams(h, cursors.each_mut(), dst.each_mut().map(|d| &mut **d));
        for (k, (cursor, dst)) in cursors.iter_mut().zip(dst).enumerate() {
            cursor.finish(h[k], dst).map_err(|m| (k, m))?;
        }
    }
    for (out, cursor) in outs.iter_mut().zip(&cursors) {
        // SAFETY: as in `huffman16_decode`, for each stream.
        unsafe { out.set_len(2 * cursor.written) };
    }
    Ok(())
}

/// Little-endian i16 words from `src` (2 bytes each, any alignment) into `dst`.
fn copy_i16_le(src: &[u8], dst: &mut [i16]) {
    assert_eq!(src.len(), 2 * dst.len(), "two bytes per word");
    if cfg!(target_endian = "little") {
        // SAFETY: `dst` has room for exactly src.len() bytes (checked above), the regions are
        // distinct (one is borrowed shared, the other exclusively), and any byte pattern is
        // a valid i16.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr() as *mut u8, src.len()) };
    } else {
        for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
            *d = i16::from_le_bytes([s[0], s[1]]);
        }
    }
}

/// The waveforms of `S` samples of each readout position of `bytes` (little-endian i16) into
/// `samples` at their software pixel (`pixel_indices`, a permutation checked before).
fn permute_waveforms<const S: usize>(bytes: &[u8], pixel_indices: &[u16], samples: &mut [i16]) {
    for (readout, &pixel) in pixel_indices.iter().enumerate() {
        let src: &[u8] = &bytes[2 * S * readout..2 * S * (readout + 1)];
        let dst: &mut [i16; S] =
            (&mut samples[S * pixel as usize..S * (pixel as usize + 1)]).try_into().expect("S samples");
        if cfg!(target_endian = "little") {
            // SAFETY: `src` holds exactly 2 × S bytes (sliced above), `dst` is S i16 (2 × S
            // bytes), they do not overlap (one shared, one exclusive borrow), and any byte
            // pattern is a valid i16.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr() as *mut u8, 2 * S) };
        } else {
            copy_i16_le(src, dst);
        }
    }
}

/// The camera event type of pedestal events (internal trigger), in `event_type`.
pub const PEDESTAL_EVENT_TYPE: u32 = 8;

/// A DigiCam camera event (`DataModel.CameraEvent`), per-pixel arrays in software pixel order.
#[derive(Clone, Debug, Default)]
pub struct DigicamEvent {
    pub telescope_id: i32,
    /// Camera event counter.
    pub event_number: u32,
    /// SWAT array event number (0 when there is no SWAT).
    pub array_event_number: u32,
    /// Camera event-type flags (`CameraEventType`; 8 = internal trigger = pedestal).
    pub event_type: u32,
    /// Camera clock (White Rabbit), integer nanoseconds since the Unix epoch (TAI-based).
    pub local_clock_ns: i64,
    /// GPS trigger time (seconds, nanoseconds), (0, 0) when absent.
    pub trigger_time: (u64, u64),
    /// Raw ADC samples, `[pixel][sample]` in software pixel order.
    pub samples: Vec<i16>,
    pub n_samples: usize,
    /// DigiCam baselines ×16 (ADC), software pixel order.
    pub baselines: Vec<i16>,
    pub pixels_flags: Vec<u16>,
    /// The raw readout → software pixel permutation (`pixelsIndices`).
    pub pixel_indices: Vec<u16>,
}

impl Drop for DigicamReader {
    fn drop(&mut self) {
        let tiles = self.spare.drain(..).chain(self.tile.take().map(|t| t.1));
        let tiles = tiles.chain(self.kept.drain(..).map(|t| t.1)).chain(self.preloaded.drain(..).map(|t| t.1));
        tiles.for_each(tile_pool::give);
    }
}

/// Tile buffers done with, for the next reader of the process. A decoded tile is ~13 MB and
/// a run's first pass keeps hundreds of megabytes of them: fresh memory costs a page fault
/// per 4 kB (about a tenth of r0-dl1's time on this kind of machine), while buffers passed on
/// from run to run are faulted in once per process. Only speed depends on it.
mod tile_pool {
    use super::Tile;
    use std::sync::Mutex;

    use std::sync::atomic::{AtomicUsize, Ordering};

    /// At most this many bytes wait in the pool; beyond it, buffers are freed.
    static MAX_BYTES: AtomicUsize = AtomicUsize::new(1 << 30);

    static POOL: Mutex<(Vec<Tile>, usize)> = Mutex::new((Vec::new(), 0));

    pub(super) fn set_limit(bytes: usize) {
        MAX_BYTES.store(bytes, Ordering::Relaxed);
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        while pool.1 > bytes {
            let tile = pool.0.pop().expect("bytes are counted");
            pool.1 -= tile.bytes();
        }
    }

    pub(super) fn give(tile: Tile) {
        let size = tile.bytes();
        if size == 0 {
            return;
        }
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if pool.1 + size <= MAX_BYTES.load(Ordering::Relaxed) {
            pool.1 += size;
            pool.0.push(tile);
        }
    }

    pub(super) fn take() -> Tile {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        match pool.0.pop() {
            Some(tile) => {
                pool.1 -= tile.bytes();
                tile
            }
            None => Tile { n_rows: 0, columns: Vec::new() },
        }
    }
}

/// How many bytes of decoded-tile buffers the process keeps for reuse between readers (1 GiB
/// unless set): a program reading many runs at once sets it to what its readers keep
/// together, so that run after run reuses the same memory.
pub fn set_tile_pool_limit(bytes: usize) {
    tile_pool::set_limit(bytes);
}

/// Decoded tiles of a file's `Events` table, handed from one reader to another.
pub struct DecodedTiles {
    path: PathBuf,
    /// The columns decoded (`DigicamReader::wanted`).
    columns: Vec<bool>,
    tiles: Vec<(usize, Tile)>,
}

impl DecodedTiles {
    /// How many events the tiles hold.
    pub fn n_events(&self) -> usize {
        self.tiles.iter().map(|(_, t)| t.n_rows).sum()
    }

    /// Bytes the tiles hold.
    pub fn bytes(&self) -> usize {
        self.tiles.iter().map(|(_, t)| t.bytes()).sum()
    }
}

/// How many consecutive tiles a [`DigicamReader`] decodes together (their Huffman16 streams
/// in one loop, see [`huffman16_decode_many`]). Two streams overlap well; four were slower on
/// a simulated night (10,900 against 11,500 events/s per core: the state of four streams no
/// longer fits the registers).
const TILES_DECODED_TOGETHER: usize = 2;

/// Reads the `Events` table of an SST-1M DigiCam zfits file, event by event.
pub struct DigicamReader {
    pub file: ZFile,
    table: usize,
    cols: DigicamColumns,
    /// The columns this reader decodes.
    wanted: Vec<bool>,
    tile: Option<(usize, Tile)>,
    /// Tiles done with, whose buffers the next decodings reuse.
    spare: Vec<Tile>,
    /// Tiles done with are kept (see [`Self::keep_decoded_tiles`]) while they fit this many
    /// bytes; `kept_bytes` is what they hold.
    keep_budget: usize,
    kept_bytes: usize,
    kept: Vec<(usize, Tile)>,
    /// Tiles decoded by another reader of the same file, used instead of decoding them again.
    preloaded: std::collections::VecDeque<(usize, Tile)>,
    next: u64,
    /// The last pixel permutation found valid.
    checked_permutation: Vec<u16>,
    pub n_events: u64,
    /// The `TARGET` header key of the Events table (`Target,W1,RA,DEC`), when present.
    pub target: Option<String>,
}

#[derive(Clone)]
struct DigicamColumns {
    telescope_id: usize,
    event_number: usize,
    array_event_number: Option<usize>,
    event_type: Option<usize>,
    samples: usize,
    pixel_indices: usize,
    baselines: Option<usize>,
    time_sec: Option<usize>,
    time_nanosec: Option<usize>,
    pixels_flags: Option<usize>,
    trig_sec: Option<usize>,
    trig_nanosec: Option<usize>,
}

impl DigicamReader {
    pub fn open(path: &Path) -> Result<DigicamReader> {
        DigicamReader::new(ZFile::open(path)?)
    }

    /// A reader over an already opened zfits file.
    pub fn new(file: ZFile) -> Result<DigicamReader> {
        let what = file.path.display().to_string();
        let table = file.table("Events").ok_or_else(|| {
            Error::msg(format!(
                "{what}: no Events table (tables: {})",
                file.tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let t = &file.tables[table];
        if t.message_type != "DataModel.CameraEvent" {
            return Err(Error::msg(format!(
                "{what}: the Events table holds {:?} messages, not SST-1M DigiCam ones (DataModel.CameraEvent)",
                t.message_type
            )));
        }
        let find = |name: &str, elem: Elem| -> Result<Option<usize>> {
            match t.column(name) {
                None => Ok(None),
                Some(i) if t.columns[i].elem == elem => Ok(Some(i)),
                Some(i) => Err(Error::msg(format!(
                    "{what}: column {name} has type {:?}, expected {elem:?}",
                    t.columns[i].elem
                ))),
            }
        };
        let need = |name: &str, elem: Elem| -> Result<usize> {
            find(name, elem)?.ok_or_else(|| Error::msg(format!("{what}: the Events table lacks the column {name}")))
        };
        let cols = DigicamColumns {
            telescope_id: need("telescopeID", Elem::I32)?,
            event_number: need("eventNumber", Elem::I32)?,
            array_event_number: find("arrayEvtNum", Elem::I32)?,
            event_type: find("event_type", Elem::I32)?,
            samples: need("hiGain_waveforms_samples", Elem::I16)?,
            pixel_indices: need("hiGain_waveforms_pixelsIndices", Elem::I16)?,
            baselines: find("hiGain_waveforms_baselines", Elem::I16)?,
            time_sec: find("local_time_sec", Elem::I64)?,
            time_nanosec: find("local_time_nanosec", Elem::I64)?,
            pixels_flags: find("pixels_flags", Elem::I16)?,
            trig_sec: find("trig_timeSec", Elem::I32)?,
            trig_nanosec: find("trig_timeNanoSec", Elem::I32)?,
        };
        for (name, c) in [("telescopeID", Some(cols.telescope_id)), ("eventNumber", Some(cols.event_number))] {
            if let Some(c) = c {
                if !t.columns[c].is_scalar() {
                    return Err(Error::msg(format!("{what}: column {name} is not a scalar")));
                }
            }
        }
        let target = t.header.string("TARGET").or_else(|| file.headers.iter().find_map(|h| h.string("TARGET")));
        let n_events = t.n_rows;
        let mut wanted = vec![false; t.columns.len()];
        for c in [Some(cols.telescope_id), Some(cols.event_number), Some(cols.samples), Some(cols.pixel_indices)]
            .into_iter()
            .chain([
                cols.array_event_number,
                cols.event_type,
                cols.baselines,
                cols.time_sec,
                cols.time_nanosec,
                cols.pixels_flags,
                cols.trig_sec,
                cols.trig_nanosec,
            ])
            .flatten()
        {
            wanted[c] = true;
        }
        Ok(DigicamReader {
            file,
            table,
            cols,
            wanted,
            tile: None,
            spare: Vec::new(),
            keep_budget: 0,
            kept_bytes: 0,
            kept: Vec::new(),
            preloaded: Default::default(),
            next: 0,
            checked_permutation: Vec::new(),
            n_events,
            target,
        })
    }

    /// A reader that leaves the pixel flags undecoded (`pixels_flags` stays empty): r0-dl1
    /// does not use them, as sst1mpipe, and they are a zlib column as large as the baselines.
    pub fn without_pixel_flags(mut self) -> DigicamReader {
        if let Some(c) = self.cols.pixels_flags.take() {
            self.wanted[c] = false;
        }
        self
    }

    /// From now on, keeps the decoded tiles it reads (while they fit in `budget_bytes`) for
    /// [`Self::into_decoded_tiles`]: a first pass over a run's start hands them to the reader
    /// of the main pass, which then does not decode them again.
    pub fn keep_decoded_tiles(&mut self, budget_bytes: usize) {
        self.keep_budget = budget_bytes;
    }

    /// The decoded tiles kept, the current one included, in order.
    pub fn into_decoded_tiles(mut self) -> DecodedTiles {
        if let Some(current) = self.tile.take() {
            self.keep(current);
        }
        // A tile decoded ahead together with the current one.
        while let Some(ahead) = self.preloaded.pop_front() {
            if self.keep_budget > 0 {
                self.keep(ahead);
            }
        }
        DecodedTiles {
            path: self.file.path.clone(),
            columns: self.wanted.clone(),
            tiles: std::mem::take(&mut self.kept),
        }
    }

    /// A reader that takes tiles from `tiles` (decoded by a reader of the same file) instead
    /// of decoding them.
    pub fn with_decoded_tiles(mut self, tiles: DecodedTiles) -> Result<DigicamReader> {
        if tiles.path != self.file.path {
            return Err(Error::msg(format!(
                "decoded tiles of {} offered to a reader of {}",
                tiles.path.display(),
                self.file.path.display()
            )));
        }
        if tiles.columns != self.wanted {
            return Err(Error::msg(format!(
                "decoded tiles of {} hold other columns than its reader decodes",
                self.file.path.display()
            )));
        }
        self.preloaded = tiles.tiles.into();
        Ok(self)
    }

    fn keep(&mut self, (index, tile): (usize, Tile)) {
        let size = tile.bytes();
        if self.kept_bytes + size <= self.keep_budget {
            self.kept_bytes += size;
            self.kept.push((index, tile));
        } else {
            self.keep_budget = 0;
            self.spare.push(tile);
        }
    }

    /// Makes tile `index` the current one: a preloaded one, else decoded (together with the
    /// next ones that are not preloaded, see [`ZFile::read_tiles_into`]) into the buffers of
    /// tiles done with.
    fn load_tile(&mut self, index: usize) -> Result<()> {
        if let Some(done) = self.tile.take() {
            if self.keep_budget > 0 {
                self.keep(done);
            } else {
                self.spare.push(done.1);
            }
        }
        while self.preloaded.front().is_some_and(|(i, _)| *i < index) {
            let (_, dropped) = self.preloaded.pop_front().expect("front");
            self.spare.push(dropped);
        }
        while self.spare.len() > TILES_DECODED_TOGETHER {
            tile_pool::give(self.spare.pop().expect("non-empty"));
        }
        let mut reuse = || self.spare.pop().unwrap_or_else(tile_pool::take);
        let tile = match self.preloaded.front() {
            Some((i, _)) if *i == index => self.preloaded.pop_front().expect("front").1,
            next_preloaded => {
                // The tiles from `index` on that are not preloaded, decoded together (up to
                // TILES_DECODED_TOGETHER of them).
                let n_tiles = self.file.tables[self.table].n_tiles();
                let until = next_preloaded.map_or(n_tiles, |(i, _)| *i).min(n_tiles);
                let wanted = Some(self.wanted.as_slice());
                let (table, file) = (self.table, &mut self.file);
                let mut tiles: Vec<Tile> = match until - index {
                    n if n >= TILES_DECODED_TOGETHER => file
                        .read_tiles_into::<TILES_DECODED_TOGETHER>(
                            table,
                            index,
                            wanted,
                            std::array::from_fn(|_| reuse()),
                        )?
                        .into(),
                    _ => vec![file.read_tile_columns_into(table, index, wanted, reuse())?],
                };
                for (k, ahead) in tiles.drain(1..).enumerate().rev() {
                    self.preloaded.push_front((index + 1 + k, ahead));
                }
                tiles.pop().expect("the tile asked for")
            }
        };
        self.tile = Some((index, tile));
        Ok(())
    }

    /// The next event's type and SWAT array counter, without reading the event.
    pub fn peek_type(&mut self) -> Result<Option<(u32, u32)>> {
        let Some(row) = self.load_next()? else { return Ok(None) };
        let (_, tile) = self.tile.as_ref().expect("loaded");
        let scalar_u32 = |col: usize| -> u32 {
            u32::from_le_bytes(tile.columns[col][4 * row..4 * row + 4].try_into().expect("checked"))
        };
        Ok(Some((
            self.cols.event_type.map(scalar_u32).unwrap_or(0),
            self.cols.array_event_number.map(scalar_u32).unwrap_or(0),
        )))
    }

    /// Makes the next event's tile the current one; its row there, or None at the end.
    fn load_next(&mut self) -> Result<Option<usize>> {
        if self.next >= self.n_events {
            return Ok(None);
        }
        let per_tile = self.file.tables[self.table].rows_per_tile;
        let tile_index = (self.next / per_tile) as usize;
        if self.tile.as_ref().map(|t| t.0) != Some(tile_index) {
            self.load_tile(tile_index)?;
        }
        Ok(Some((self.next % per_tile) as usize))
    }

    /// Passes over the next event without reading it.
    pub fn skip_event(&mut self) {
        self.next = (self.next + 1).min(self.n_events);
    }

    /// The next event, or `None` at the end of the table.
    pub fn next_event(&mut self) -> Result<Option<DigicamEvent>> {
        let mut event = DigicamEvent::default();
        Ok(if self.read_into(&mut event)? { Some(event) } else { None })
    }

    /// Reads the next event into `event` (its buffers are reused); false at the end.
    pub fn read_into(&mut self, event: &mut DigicamEvent) -> Result<bool> {
        let Some(row) = self.load_next()? else { return Ok(false) };
        let (_, tile) = self.tile.as_ref().expect("loaded");
        let at = RowBytes::find(tile, &self.cols, row);
        let what = self.file.path.display().to_string();
        let table = &self.file.tables[self.table];
        let e = event_at(table, tile, &self.cols, row, &at, &what, self.next, &mut self.checked_permutation)?;
        e.to_event(event);
        self.next += 1;
        Ok(true)
    }

    /// The rest of the current tile's events (the next event's tile, from the next event on)
    /// as one [`DigicamTile`], every event checked as [`Self::read_into`] checks it; None at
    /// the end. The events are read in place, without a copy; the tile's buffers can come back
    /// through [`Self::reuse_tile`].
    pub fn next_tile(&mut self) -> Result<Option<DigicamTile>> {
        let Some(first_row) = self.load_next()? else { return Ok(None) };
        let (_, tile) = self.tile.take().expect("loaded");
        let what = self.file.path.display().to_string();
        let mut rows = Vec::with_capacity(tile.n_rows - first_row);
        let mut at = RowBytes::find(&tile, &self.cols, first_row);
        for row in first_row..tile.n_rows {
            let table = &self.file.tables[self.table];
            event_at(table, &tile, &self.cols, row, &at, &what, self.next, &mut self.checked_permutation)?;
            rows.push(at);
            at = at.next(&tile, &self.cols);
            self.next += 1;
        }
        Ok(Some(DigicamTile { tile, cols: self.cols.clone(), rows }))
    }

    /// Gives back the buffers of a tile from [`Self::next_tile`], for the next decodings.
    pub fn reuse_tile(&mut self, tile: DigicamTile) {
        if self.spare.len() < TILES_DECODED_TOGETHER {
            self.spare.push(tile.tile);
        } else {
            tile_pool::give(tile.tile);
        }
    }
}

/// Where a row's arrays start in a tile's columns (after their 4-byte length).
#[derive(Clone, Copy)]
struct RowBytes {
    samples: usize,
    pixel_indices: usize,
    baselines: Option<usize>,
    pixels_flags: Option<usize>,
}

impl RowBytes {
    /// Row `row`'s starts, found by walking the array lengths from the tile's first row.
    fn find(tile: &Tile, cols: &DigicamColumns, row: usize) -> RowBytes {
        RowBytes {
            samples: tile.array_start(cols.samples, row),
            pixel_indices: tile.array_start(cols.pixel_indices, row),
            baselines: cols.baselines.map(|c| tile.array_start(c, row)),
            pixels_flags: cols.pixels_flags.map(|c| tile.array_start(c, row)),
        }
    }

    /// The starts of the row after `row`, whose starts are `self`.
    fn next(&self, tile: &Tile, cols: &DigicamColumns) -> RowBytes {
        let step = |c: usize, at: usize| at + 4 + tile.array_len_at(c, at);
        RowBytes {
            samples: step(cols.samples, self.samples),
            pixel_indices: step(cols.pixel_indices, self.pixel_indices),
            baselines: cols.baselines.zip(self.baselines).map(|(c, at)| step(c, at)),
            pixels_flags: cols.pixels_flags.zip(self.pixels_flags).map(|(c, at)| step(c, at)),
        }
    }
}

/// The event of `row` in `tile` (its arrays starting at `at`), checked: the pixel count and
/// the samples per pixel, the per-pixel arrays' sizes, and that `pixelsIndices` is a
/// permutation (once per distinct permutation, kept in `checked`: the camera sends the same
/// one with every event). `number` is the event's index in the table, for errors.
#[allow(clippy::too_many_arguments)]
fn event_at<'t>(
    table: &ZTable,
    tile: &'t Tile,
    c: &DigicamColumns,
    row: usize,
    at: &RowBytes,
    what: &str,
    number: u64,
    checked: &mut Vec<u16>,
) -> Result<DigicamEventRef<'t>> {
    let e = DigicamEventRef::at(tile, c, row, at);
    let n_pixels = e.pixel_indices.len() / 2;
    if n_pixels == 0 || !(e.samples.len() / 2).is_multiple_of(n_pixels) {
        return Err(Error::msg(format!(
            "{what}: event {} (row {number}): {} samples for {n_pixels} pixels",
            e.event_number,
            e.samples.len() / 2
        )));
    }
    for (col, bytes) in [(c.baselines, e.baselines), (c.pixels_flags, e.pixels_flags)] {
        if let Some(col) = col {
            if !bytes.is_empty() && bytes.len() != 2 * n_pixels {
                return Err(Error::msg(format!(
                    "{what}: event {}: {} values of {} for {n_pixels} pixels",
                    e.event_number,
                    bytes.len() / 2,
                    table.columns[col].name
                )));
            }
        }
    }
    let same = checked.len() == n_pixels
        && e.pixel_indices.chunks_exact(2).zip(checked.iter()).all(|(b, &p)| u16::from_le_bytes([b[0], b[1]]) == p);
    if !same {
        let mut seen = vec![false; n_pixels];
        for b in e.pixel_indices.chunks_exact(2) {
            let p = u16::from_le_bytes([b[0], b[1]]);
            if (p as usize) >= n_pixels || std::mem::replace(&mut seen[p as usize], true) {
                return Err(Error::msg(format!(
                    "{what}: event {} (row {number}): pixelsIndices is not a permutation of 0..{n_pixels} (value {p})",
                    e.event_number
                )));
            }
        }
        checked.clear();
        checked.extend(e.pixel_indices.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])));
    }
    Ok(e)
}

/// The events of one decoded tile, checked, read in place: see [`DigicamReader::next_tile`].
pub struct DigicamTile {
    tile: Tile,
    cols: DigicamColumns,
    /// Per event: where its arrays start.
    rows: Vec<RowBytes>,
}

impl DigicamTile {
    pub fn n_events(&self) -> usize {
        self.rows.len()
    }

    /// Event `k` of the tile (0 is the first one [`DigicamReader::next_tile`] returned).
    pub fn event(&self, k: usize) -> DigicamEventRef<'_> {
        let at = &self.rows[k];
        let first_row = self.tile.n_rows - self.rows.len();
        DigicamEventRef::at(&self.tile, &self.cols, first_row + k, at)
    }
}

/// A DigiCam event as its tile holds it: the per-pixel arrays in readout order,
/// little-endian, with the readout → software pixel permutation (checked). [`Self::to_event`]
/// makes a [`DigicamEvent`] of it.
pub struct DigicamEventRef<'t> {
    pub telescope_id: i32,
    pub event_number: u32,
    pub array_event_number: u32,
    pub event_type: u32,
    pub local_clock_ns: i64,
    pub trigger_time: (u64, u64),
    /// Raw ADC samples, `[readout position][sample]`, little-endian i16.
    pub samples: &'t [u8],
    /// DigiCam baselines ×16 per readout position, little-endian i16 (empty when absent).
    pub baselines: &'t [u8],
    /// Pixel flags per readout position, little-endian u16 (empty when absent or not read).
    pub pixels_flags: &'t [u8],
    /// The software pixel of each readout position (`pixelsIndices`), little-endian u16.
    pub pixel_indices: &'t [u8],
    pub n_samples: usize,
}

impl<'t> DigicamEventRef<'t> {
    fn at(tile: &'t Tile, c: &DigicamColumns, row: usize, at: &RowBytes) -> DigicamEventRef<'t> {
        let scalar_u32 = |col: usize| -> u32 {
            u32::from_le_bytes(tile.columns[col][4 * row..4 * row + 4].try_into().expect("checked"))
        };
        let scalar_u64 = |col: usize| -> u64 {
            u64::from_le_bytes(tile.columns[col][8 * row..8 * row + 8].try_into().expect("checked"))
        };
        let sec = c.time_sec.map(scalar_u64).unwrap_or(0);
        let nanosec = c.time_nanosec.map(scalar_u64).unwrap_or(0);
        let array = |col: usize, start: usize| tile.array_from(col, start);
        let samples = array(c.samples, at.samples);
        let pixel_indices = array(c.pixel_indices, at.pixel_indices);
        let n_pixels = pixel_indices.len() / 2;
        DigicamEventRef {
            telescope_id: scalar_u32(c.telescope_id) as i32,
            event_number: scalar_u32(c.event_number),
            array_event_number: c.array_event_number.map(scalar_u32).unwrap_or(0),
            event_type: c.event_type.map(scalar_u32).unwrap_or(0),
            local_clock_ns: (sec as i64).wrapping_mul(1_000_000_000).wrapping_add(nanosec as i64),
            trigger_time: (
                c.trig_sec.map(scalar_u32).unwrap_or(0) as u64,
                c.trig_nanosec.map(scalar_u32).unwrap_or(0) as u64,
            ),
            samples,
            baselines: c.baselines.zip(at.baselines).map_or(&[][..], |(col, start)| array(col, start)),
            pixels_flags: c.pixels_flags.zip(at.pixels_flags).map_or(&[][..], |(col, start)| array(col, start)),
            pixel_indices,
            n_samples: (samples.len() / 2).checked_div(n_pixels).unwrap_or(0),
        }
    }

    /// The event with its per-pixel arrays in software pixel order, into `event` (its buffers
    /// are reused).
    pub fn to_event(&self, event: &mut DigicamEvent) {
        event.telescope_id = self.telescope_id;
        event.event_number = self.event_number;
        event.array_event_number = self.array_event_number;
        event.event_type = self.event_type;
        event.local_clock_ns = self.local_clock_ns;
        event.trigger_time = self.trigger_time;
        event.pixel_indices.clear();
        event.pixel_indices.extend(self.pixel_indices.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])));
        let (n_pixels, n_samples) = (event.pixel_indices.len(), self.n_samples);
        event.n_samples = n_samples;
        event.samples.resize(n_pixels * n_samples, 0);
        match n_samples {
            // SST-1M's 50 samples: a copy of known size, inlined (a memcpy call per pixel
            // costs more than its 100 bytes).
            50 => permute_waveforms::<50>(self.samples, &event.pixel_indices, &mut event.samples),
            _ => {
                for (readout, &pixel) in event.pixel_indices.iter().enumerate() {
                    let src = &self.samples[2 * readout * n_samples..2 * (readout + 1) * n_samples];
                    let dst = &mut event.samples[pixel as usize * n_samples..(pixel as usize + 1) * n_samples];
                    copy_i16_le(src, dst);
                }
            }
        }
        let reorder = |bytes: &[u8], out: &mut Vec<u16>, indices: &[u16]| {
            out.clear();
            if bytes.is_empty() {
                return;
            }
            out.resize(indices.len(), 0);
            for (b, &pixel) in bytes.chunks_exact(2).zip(indices) {
                out[pixel as usize] = u16::from_le_bytes([b[0], b[1]]);
            }
        };
        let mut baselines = Vec::new();
        reorder(self.baselines, &mut baselines, &event.pixel_indices);
        event.baselines.clear();
        event.baselines.extend(baselines.iter().map(|&b| b as i16));
        let mut flags = std::mem::take(&mut event.pixels_flags);
        reorder(self.pixels_flags, &mut flags, &event.pixel_indices);
        event.pixels_flags = flags;
    }
}

#[cfg(test)]
mod tests {
    /// Both vector loops of "diff" and the scalar one agree on every length and remainder.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn diff_is_undone_alike_by_every_loop() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in (0..200).chain([4099, 65_536]) {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let mut scalar = bytes.clone();
            super::undo_diff_rest(&mut scalar, (0, 0));
            let mut sse2 = bytes.clone();
            // SAFETY: SSE2 is baseline on x86-64.
            let done = unsafe { super::undo_diff_sse2(&mut sse2) };
            super::undo_diff_rest(&mut sse2, done);
            assert_eq!(sse2, scalar, "SSE2, {len} bytes");
            if std::arch::is_x86_feature_detected!("avx2") {
                let mut avx2 = bytes.clone();
                // SAFETY: the CPU has AVX2 (checked just above).
                let done = unsafe { super::undo_diff_avx2(&mut avx2) };
                super::undo_diff_rest(&mut avx2, done);
                assert_eq!(avx2, scalar, "AVX2, {len} bytes");
            }
        }
    }
}
