//! Append-only HDF5 tables that pandas (`read_hdf(path, key=…)`), PyTables and h5py read as is.
//!
//! A table is a one-dimensional, chunked, resizable dataset of a compound type (one Rust
//! `#[repr(C)]` struct deriving `H5Type` per row layout), compressed with deflate, which every
//! HDF5 reader decodes without plugins. Rows are buffered and written a chunk at a time, so
//! memory does not grow with the number of rows. The PyTables attributes (`CLASS`, `TITLE`,
//! `VERSION`, `FIELD_i_NAME`, `NROWS`) make it look like a PyTables table, and ctapipe's
//! `CTAFIELD_i_NAME`/`_UNIT` attributes carry the units. Nothing time- or host-dependent is
//! written, so the same rows give the same bytes. Every chunk carries HDF5's Fletcher-32
//! checksum of its stored bytes (after shuffle and deflate, as h5py orders them), so damage to
//! table data fails the read that meets it in every HDF5 reader, whatever the filters before it
//! did (deflate's own stream check covers only what it compressed). String attributes are
//! variable-length and live in HDF5's global heap, which no HDF5 format checksums: for them,
//! as for every byte, the store's SHA-256 (`verify`) is the check.
//!
//! Bool columns are stored as PyTables stores them (and so ctapipe): the 8-bit bitfield
//! `H5T_STD_B8LE`, which PyTables reads as numpy `bool` (h5py as `uint8`, as for any ctapipe
//! file). `hdf5-metno` only knows HDF5's enum bool, and HDF5 converts neither way between enum
//! and bitfield, so a row type with bools gets its own file and memory types (the same compound
//! with every bool a bitfield, [`bitfield_bool_type`]) and its rows go out through `H5Dwrite`:
//! a Rust `bool` is one byte 0 or 1, exactly a B8 value.
use hdf5::types::VarLenUnicode;
use hdf5::{Dataset, Extent, Group, H5Type, Location};
use sst1mflow_base::error::{Error, Result};

pub fn hdf5_error(what: impl std::fmt::Display, e: hdf5::Error) -> Error {
    Error::msg(format!("{what}: {e}"))
}

/// Creates an HDF5 file with object timestamps off everywhere (the root group included), so the
/// same content gives the same bytes.
pub fn create_file(path: &std::path::Path) -> Result<hdf5::File> {
    hdf5::File::with_options()
        .with_fcpl(|p| p.obj_track_times(false))
        .create(path)
        .map_err(|e| hdf5_error(format!("cannot create {}", path.display()), e))
}

/// Creates a product file: timestamps off, PyTables root attributes, and the provenance
/// attributes `sst1mflow_activity_key` and `sst1mflow_pipeline_version` that let `lineage`
/// trace a copy and `verify` check it.
pub fn create_product_file(path: &std::path::Path, activity_key: &str, pipeline_version: &str) -> Result<hdf5::File> {
    let file = create_file(path)?;
    string_attr(&file, "CLASS", "GROUP")?;
    string_attr(&file, "TITLE", "")?;
    string_attr(&file, "VERSION", "1.0")?;
    string_attr(&file, "PYTABLES_FORMAT_VERSION", "2.1")?;
    string_attr(&file, "sst1mflow_activity_key", activity_key)?;
    string_attr(&file, "sst1mflow_pipeline_version", pipeline_version)?;
    Ok(file)
}

/// Flushes and closes a product file, reporting what dropping it would hide: HDF5 writes its
/// metadata (the superblock's end-of-file address among it) at flush, so a full disk shows up
/// here, and a file that failed here must not be published. Every writer ends with this.
pub fn close_product_file(file: hdf5::File) -> Result<()> {
    let name = file.filename();
    file.flush().map_err(|e| hdf5_error(format!("cannot finish writing {name}"), e))?;
    file.close().map_err(|e| hdf5_error(format!("cannot close {name}"), e))
}

/// Writes a string attribute (variable-length UTF-8).
pub fn string_attr(loc: &Location, name: &str, value: &str) -> Result<()> {
    let v: VarLenUnicode = value.parse().map_err(|_| Error::msg(format!("attribute {name}: invalid string")))?;
    loc.new_attr::<VarLenUnicode>()
        .create(name)
        .and_then(|a| a.write_scalar(&v))
        .map_err(|e| hdf5_error(format!("cannot write attribute {name}"), e))
}

/// Reads a string attribute, `None` when absent or not a string.
pub fn read_string_attr(loc: &Location, name: &str) -> Option<String> {
    loc.attr(name).ok()?.read_scalar::<VarLenUnicode>().ok().map(|s| s.as_str().to_string())
}

/// Opens the one `tel_NNN` table under `group_path` (ctapipe's per-telescope layout) and checks
/// that its records have every column of `required`. Errors are the problem alone; callers say
/// which file. Returns the table and its telescope id.
pub fn open_telescope_table<'a>(
    file: &hdf5::File,
    group_path: &str,
    required: impl Iterator<Item = &'a str>,
) -> std::result::Result<(Dataset, u16), String> {
    let group = file.group(group_path).map_err(|_| format!("no {group_path} group"))?;
    let names = group.member_names().map_err(|e| e.to_string())?;
    let [table] = names.as_slice() else {
        return Err(format!("expected one telescope table in {group_path}, found {names:?}"));
    };
    let tel_id: u16 = table
        .strip_prefix("tel_")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("unexpected table name {table}"))?;
    let dataset = group.dataset(table).map_err(|e| format!("table {table}: {e}"))?;
    let present: Vec<String> = match dataset.dtype().and_then(|t| t.to_descriptor()) {
        Ok(hdf5::types::TypeDescriptor::Compound(c)) => c.fields.into_iter().map(|f| f.name).collect(),
        _ => return Err(format!("{group_path}/{table} is not a table of records")),
    };
    let missing: Vec<&str> = required.filter(|c| !present.iter().any(|p| p == c)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "{group_path}/{table} lacks the column(s) {} (made by another version of sst1mflow?)",
            missing.join(", ")
        ));
    }
    Ok((dataset, tel_id))
}

/// The telescope of a one-telescope file (its table in `group_path` is `tel_NNN`), found
/// without reading any rows; None when the file or group cannot tell.
pub fn telescope_of_file(path: &std::path::Path, group_path: &str) -> Option<u16> {
    let file = hdf5::File::open(path).ok()?;
    let names = file.group(group_path).ok()?.member_names().ok()?;
    match names.as_slice() {
        [table] => table.strip_prefix("tel_")?.parse().ok(),
        _ => None,
    }
}

/// Marks a group the way PyTables does.
pub fn pytables_group(group: &Group) -> Result<()> {
    string_attr(group, "CLASS", "GROUP")?;
    string_attr(group, "TITLE", "")?;
    string_attr(group, "VERSION", "1.0")
}

/// Creates `path`'s groups (PyTables-style) and returns the last.
pub fn ensure_groups(file: &hdf5::File, path: &str) -> Result<Group> {
    let mut group: Group = (**file).clone();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        group = match group.group(part) {
            Ok(g) => g,
            Err(_) => {
                let g = group
                    .create_group_builder()
                    .obj_track_times(false)
                    .create(part)
                    .map_err(|e| hdf5_error(format!("cannot create group {part}"), e))?;
                pytables_group(&g)?;
                g
            }
        };
    }
    Ok(group)
}

/// One column's metadata for the attributes: name and unit ("" for none). Fixed-length string
/// columns are described with [`ColumnMeta::string`] (ctapipe's `string` transform).
pub struct ColumnMeta<'a> {
    pub name: &'a str,
    pub unit: &'a str,
    /// Length of a fixed-length string column, 0 for other columns.
    pub string_len: usize,
}

impl<'a> ColumnMeta<'a> {
    pub fn new(name: &'a str, unit: &'a str) -> ColumnMeta<'a> {
        ColumnMeta { name, unit, string_len: 0 }
    }

    pub fn string(name: &'a str, len: usize) -> ColumnMeta<'a> {
        ColumnMeta { name, unit: "", string_len: len }
    }
}

/// A scalar attribute value for [`Table::attrs`].
pub enum Attr<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
}

/// Writes scalar attributes on a location.
pub fn write_attrs(loc: &Location, attrs: &[(&str, Attr)]) -> Result<()> {
    for (name, value) in attrs {
        match value {
            Attr::Str(s) => string_attr(loc, name, s)?,
            Attr::Int(i) => loc
                .new_attr::<i64>()
                .create(*name)
                .and_then(|a| a.write_scalar(i))
                .map_err(|e| hdf5_error(format!("cannot write attribute {name}"), e))?,
            Attr::Float(f) => loc
                .new_attr::<f64>()
                .create(*name)
                .and_then(|a| a.write_scalar(f))
                .map_err(|e| hdf5_error(format!("cannot write attribute {name}"), e))?,
        }
    }
    Ok(())
}

pub struct Table<T: H5Type + Clone> {
    dataset: Dataset,
    buffer: Vec<T>,
    chunk: usize,
    rows: usize,
    /// The in-memory row type with bitfield bools, for row types that have bools.
    bitfield_memory_type: Option<hdf5::Datatype>,
}

/// Writes `rows` (laid out as `memory_type` says) at row `first` of a one-dimensional dataset.
fn write_rows_raw<T>(dataset: &Dataset, memory_type: &hdf5::Datatype, rows: &[T], first: usize) -> Result<()> {
    use hdf5_sys::{h5d, h5p, h5s};
    let start = first as hdf5_sys::h5::hsize_t;
    let count = rows.len() as hdf5_sys::h5::hsize_t;
    // SAFETY: the dataset and type ids are alive for the call; the selection covers `count`
    // rows, and `rows` holds `count` values of the layout `memory_type` describes; the two
    // dataspaces are closed on every path.
    let status = hdf5::sync::sync(|| unsafe {
        let file_space = h5d::H5Dget_space(dataset.id());
        if file_space < 0 {
            return -1;
        }
        let memory_space = h5s::H5Screate_simple(1, &count, std::ptr::null());
        let mut status = memory_space;
        if status >= 0 {
            status = h5s::H5Sselect_hyperslab(
                file_space,
                h5s::H5S_seloper_t::H5S_SELECT_SET,
                &start,
                std::ptr::null(),
                &count,
                std::ptr::null(),
            ) as i64;
        }
        if status >= 0 {
            status = h5d::H5Dwrite(
                dataset.id(),
                memory_type.id(),
                memory_space,
                file_space,
                h5p::H5P_DEFAULT,
                rows.as_ptr().cast(),
            ) as i64;
        }
        if memory_space >= 0 {
            h5s::H5Sclose(memory_space);
        }
        h5s::H5Sclose(file_space);
        status
    });
    if status < 0 {
        return Err(Error::msg(format!("cannot write rows to {}", dataset.name())));
    }
    Ok(())
}

/// Whether a type has a bool anywhere inside.
fn has_bool(desc: &hdf5::types::TypeDescriptor) -> bool {
    use hdf5::types::TypeDescriptor as TD;
    match desc {
        TD::Boolean => true,
        TD::FixedArray(inner, _) | TD::VarLenArray(inner) => has_bool(inner),
        TD::Compound(c) => c.fields.iter().any(|f| has_bool(&f.ty)),
        _ => false,
    }
}

/// The HDF5 type of `desc` (at its offsets) with every bool as the 8-bit bitfield PyTables
/// writes for `BoolCol`.
fn bitfield_bool_type(desc: &hdf5::types::TypeDescriptor) -> Result<hdf5::Datatype> {
    use hdf5::types::TypeDescriptor as TD;
    use hdf5_sys::h5t;
    let failed = |what: &str| Error::msg(format!("cannot build the HDF5 type of a bool column ({what})"));
    // SAFETY: each call gets valid type ids and returns a new id (negative on failure), which
    // `from_id` takes ownership of; names are NUL-terminated.
    hdf5::sync::sync(|| unsafe {
        let id = match desc {
            TD::Boolean => h5t::H5Tcopy(*h5t::H5T_STD_B8LE),
            TD::FixedArray(inner, len) => {
                let element = bitfield_bool_type(inner)?;
                let dims = *len as hdf5_sys::h5::hsize_t;
                h5t::H5Tarray_create2(element.id(), 1, &dims)
            }
            TD::Compound(c) => {
                let id = h5t::H5Tcreate(h5t::H5T_class_t::H5T_COMPOUND, c.size);
                for field in &c.fields {
                    let member = bitfield_bool_type(&field.ty)?;
                    let name = std::ffi::CString::new(field.name.as_str()).map_err(|_| failed("field name"))?;
                    if id < 0 || h5t::H5Tinsert(id, name.as_ptr(), field.offset, member.id()) < 0 {
                        return Err(failed(&field.name));
                    }
                }
                id
            }
            other => return hdf5::Datatype::from_descriptor(other).map_err(|e| hdf5_error("HDF5 type", e)),
        };
        if id < 0 {
            return Err(failed("H5T call"));
        }
        hdf5::from_id::<hdf5::Datatype>(id).map_err(|e| hdf5_error("HDF5 type", e))
    })
}

/// The deflate level of every deflated table. Level 1: on shuffled DL2 rows it runs 1.5× as
/// fast as level 4 (122 against 79 MB/s) for 4% more bytes, and DL1 parameters and DL2 are
/// written once per run and activity, on the nightly's critical path.
pub const DEFLATE_LEVEL: u8 = 1;

/// How a table's chunks are stored. Every table is checksummed (Fletcher-32); the choice is
/// whether deflate runs first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// Shuffle and deflate ([`DEFLATE_LEVEL`]): the default, for tables that compress.
    Deflate,
    /// Checksummed only. For tables deflate barely shrinks at a high price: a DL1 image row is
    /// 11.7 kB of float charges and peak times whose low mantissa bytes are noise, which
    /// deflate shrinks by a fifth at ~250 µs per row, more than the whole event's physics.
    Plain,
}

impl<T: H5Type + Clone> Table<T> {
    /// Creates the table `name` in `group`, deflated. `columns` must list the row struct's
    /// fields in order.
    pub fn create(group: &Group, name: &str, chunk: usize, columns: &[ColumnMeta]) -> Result<Table<T>> {
        Self::create_stored(group, name, chunk, columns, Storage::Deflate)
    }

    /// Creates the table `name` in `group` with the chunk storage `storage`.
    pub fn create_stored(
        group: &Group,
        name: &str,
        chunk: usize,
        columns: &[ColumnMeta],
        storage: Storage,
    ) -> Result<Table<T>> {
        // The file gets the packed layout of the row: HDF5 converts field by field from the
        // in-memory `repr(C)` layout, so padding bytes (uninitialised memory) never reach the
        // file and the same rows always give the same bytes.
        let descriptor = T::type_descriptor();
        let bitfield_memory_type = if has_bool(&descriptor) { Some(bitfield_bool_type(&descriptor)?) } else { None };
        let builder = match &bitfield_memory_type {
            Some(_) => group.new_dataset_builder().empty_as(bitfield_bool_type(&descriptor.to_packed_repr())?),
            None => group.new_dataset::<T>().packed(true),
        };
        let builder = builder.chunk((chunk,)).shape(Extent::resizable(0));
        let builder = match storage {
            Storage::Deflate => builder.shuffle().deflate(DEFLATE_LEVEL),
            Storage::Plain => builder,
        };
        let dataset =
            builder.fletcher32().create(name).map_err(|e| hdf5_error(format!("cannot create table {name}"), e))?;
        string_attr(&dataset, "CLASS", "TABLE")?;
        string_attr(&dataset, "TITLE", "")?;
        string_attr(&dataset, "VERSION", "2.7")?;
        for (i, c) in columns.iter().enumerate() {
            string_attr(&dataset, &format!("FIELD_{i}_NAME"), c.name)?;
            string_attr(&dataset, &format!("CTAFIELD_{i}_NAME"), c.name)?;
            if !c.unit.is_empty() {
                string_attr(&dataset, &format!("CTAFIELD_{i}_UNIT"), c.unit)?;
                string_attr(&dataset, &format!("CTAFIELD_{i}_TRANSFORM"), "quantity")?;
            }
            if c.string_len > 0 {
                string_attr(&dataset, &format!("CTAFIELD_{i}_TRANSFORM"), "string")?;
                write_attrs(&dataset, &[(&format!("CTAFIELD_{i}_MAXLEN"), Attr::Int(c.string_len as i64))])?;
            }
        }
        Ok(Table { dataset, buffer: Vec::with_capacity(chunk), chunk, rows: 0, bitfield_memory_type })
    }

    /// Writes table-level attributes (ctapipe's `TAB_TYPE`, `TAB_VER`, …).
    pub fn attrs(&self, attrs: &[(&str, Attr)]) -> Result<()> {
        write_attrs(&self.dataset, attrs)
    }

    pub fn push(&mut self, row: T) -> Result<()> {
        self.buffer.push(row);
        if self.buffer.len() == self.chunk {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let n = self.buffer.len();
        self.dataset.resize((self.rows + n,)).map_err(|e| hdf5_error("cannot grow table", e))?;
        match &self.bitfield_memory_type {
            None => self
                .dataset
                .write_slice(&self.buffer, self.rows..self.rows + n)
                .map_err(|e| hdf5_error("cannot write rows", e))?,
            Some(memory_type) => write_rows_raw(&self.dataset, memory_type, &self.buffer, self.rows)?,
        }
        self.rows += n;
        self.buffer.clear();
        Ok(())
    }

    /// Writes the remaining rows and the row count; returns it.
    pub fn finish(mut self) -> Result<usize> {
        self.flush()?;
        self.dataset
            .new_attr::<u64>()
            .create("NROWS")
            .and_then(|a| a.write_scalar(&(self.rows as u64)))
            .map_err(|e| hdf5_error("cannot write NROWS", e))?;
        Ok(self.rows)
    }
}

/// ctapipe 0.17's attributes of a TAI time column stored as MJD.
pub fn time_column_attrs<T: H5Type + Clone>(table: &Table<T>, column: usize) -> Result<()> {
    let (transform, scale, format) = (
        format!("CTAFIELD_{column}_TRANSFORM"),
        format!("CTAFIELD_{column}_TIME_SCALE"),
        format!("CTAFIELD_{column}_TIME_FORMAT"),
    );
    table.attrs(&[(&transform, Attr::Str("time")), (&scale, Attr::Str("tai")), (&format, Attr::Str("mjd"))])
}

/// A column of a table whose array shapes are known only when it is written (sim_telarray's
/// histogram sizes come from the file): a compile-time row struct cannot describe it, so such
/// tables go through the HDF5 C calls with a type built at run time. Values are little-endian
/// (the machines we run on), packed in column order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ShapedColumn {
    /// A PyTables bool (the 8-bit bitfield, one byte 0 or 1).
    Bool,
    I32,
    I64,
    U64,
    F64,
    /// A fixed-length ASCII string of this many bytes (NUL-padded).
    Ascii(usize),
    /// A one-dimensional `f64` array of this length.
    F64s(usize),
    /// A one-dimensional `f32` array of this length.
    F32s(usize),
    /// A two-dimensional `f32` array (rows, columns), row-major.
    F32Matrix(usize, usize),
}

impl ShapedColumn {
    fn size(&self) -> usize {
        match *self {
            ShapedColumn::Bool => 1,
            ShapedColumn::I32 => 4,
            ShapedColumn::I64 | ShapedColumn::U64 | ShapedColumn::F64 => 8,
            ShapedColumn::F32s(n) => 4 * n,
            ShapedColumn::Ascii(n) => n,
            ShapedColumn::F64s(n) => 8 * n,
            ShapedColumn::F32Matrix(r, c) => 4 * r * c,
        }
    }
}

/// A built HDF5 type id, closed when dropped.
struct OwnedType(hdf5_sys::h5i::hid_t);

impl Drop for OwnedType {
    fn drop(&mut self) {
        // SAFETY: the id was returned by an H5T call and is closed only here.
        hdf5::sync::sync(|| unsafe { hdf5_sys::h5t::H5Tclose(self.0) });
    }
}

/// The packed compound type of `columns`, and its size.
fn shaped_row_type(columns: &[(&str, ShapedColumn)]) -> Result<(OwnedType, usize)> {
    use hdf5_sys::h5t;
    let failed = |what: &str| Error::msg(format!("cannot build the HDF5 row type ({what})"));
    let size: usize = columns.iter().map(|(_, c)| c.size()).sum();
    // SAFETY: every id passed is alive (the globals are HDF5's predefined types, the others are
    // owned here and closed by OwnedType); names are NUL-terminated; offsets stay within `size`.
    hdf5::sync::sync(|| unsafe {
        let row = OwnedType(h5t::H5Tcreate(h5t::H5T_class_t::H5T_COMPOUND, size));
        if row.0 < 0 {
            return Err(failed("compound"));
        }
        let mut offset = 0;
        for (name, column) in columns {
            let member = match *column {
                ShapedColumn::Bool => OwnedType(h5t::H5Tcopy(*h5t::H5T_STD_B8LE)),
                ShapedColumn::I32 => OwnedType(h5t::H5Tcopy(*h5t::H5T_STD_I32LE)),
                ShapedColumn::I64 => OwnedType(h5t::H5Tcopy(*h5t::H5T_STD_I64LE)),
                ShapedColumn::U64 => OwnedType(h5t::H5Tcopy(*h5t::H5T_STD_U64LE)),
                ShapedColumn::F64 => OwnedType(h5t::H5Tcopy(*h5t::H5T_IEEE_F64LE)),
                ShapedColumn::F32s(n) => {
                    let dims = [n as hdf5_sys::h5::hsize_t];
                    OwnedType(h5t::H5Tarray_create2(*h5t::H5T_IEEE_F32LE, 1, dims.as_ptr()))
                }
                ShapedColumn::Ascii(n) => {
                    let t = OwnedType(h5t::H5Tcopy(*h5t::H5T_C_S1));
                    if t.0 < 0
                        || h5t::H5Tset_size(t.0, n) < 0
                        || h5t::H5Tset_strpad(t.0, h5t::H5T_str_t::H5T_STR_NULLPAD) < 0
                    {
                        return Err(failed(name));
                    }
                    t
                }
                ShapedColumn::F64s(n) => {
                    let dims = [n as hdf5_sys::h5::hsize_t];
                    OwnedType(h5t::H5Tarray_create2(*h5t::H5T_IEEE_F64LE, 1, dims.as_ptr()))
                }
                ShapedColumn::F32Matrix(r, c) => {
                    let dims = [r as hdf5_sys::h5::hsize_t, c as hdf5_sys::h5::hsize_t];
                    OwnedType(h5t::H5Tarray_create2(*h5t::H5T_IEEE_F32LE, 2, dims.as_ptr()))
                }
            };
            let cname = std::ffi::CString::new(*name).map_err(|_| failed("column name"))?;
            if member.0 < 0 || h5t::H5Tinsert(row.0, cname.as_ptr(), offset, member.0) < 0 {
                return Err(failed(name));
            }
            offset += column.size();
        }
        Ok((row, size))
    })
}

/// Creates table `name` in `group` of `n_rows` rows of `row_type` from `bytes` (that many rows
/// in its layout): deflated, in chunks of up to 4096 rows, resizable, no timestamps.
fn create_table_dataset(
    group: &Group,
    name: &str,
    row_type: &OwnedType,
    n_rows: usize,
    bytes: &[u8],
) -> Result<Dataset> {
    use hdf5_sys::{h5d, h5p, h5s};
    let cname = std::ffi::CString::new(name).map_err(|_| Error::msg(format!("table name {name:?}")))?;
    let n = [n_rows as hdf5_sys::h5::hsize_t];
    let chunk = [n_rows.clamp(1, 4096) as hdf5_sys::h5::hsize_t];
    let unlimited = [h5s::H5S_UNLIMITED];
    // SAFETY: ids are checked before use and closed on every path; `bytes` holds `n_rows` rows
    // of the layout `row_type` describes.
    let dataset = hdf5::sync::sync(|| unsafe {
        let space = h5s::H5Screate_simple(1, n.as_ptr(), unlimited.as_ptr());
        let dcpl = h5p::H5Pcreate(*h5p::H5P_CLS_DATASET_CREATE);
        let mut id = -1;
        if space >= 0
            && dcpl >= 0
            && h5p::H5Pset_chunk(dcpl, 1, chunk.as_ptr()) >= 0
            && h5p::H5Pset_deflate(dcpl, DEFLATE_LEVEL as u32) >= 0
            && h5p::H5Pset_fletcher32(dcpl) >= 0
            && h5p::H5Pset_obj_track_times(dcpl, 0) >= 0
        {
            id = h5d::H5Dcreate2(
                group.id(),
                cname.as_ptr(),
                row_type.0,
                space,
                h5p::H5P_DEFAULT,
                dcpl,
                h5p::H5P_DEFAULT,
            );
            if id >= 0
                && !bytes.is_empty()
                && h5d::H5Dwrite(id, row_type.0, h5s::H5S_ALL, h5s::H5S_ALL, h5p::H5P_DEFAULT, bytes.as_ptr().cast())
                    < 0
            {
                h5d::H5Dclose(id);
                id = -1;
            }
        }
        if dcpl >= 0 {
            h5p::H5Pclose(dcpl);
        }
        if space >= 0 {
            h5s::H5Sclose(space);
        }
        id
    });
    if dataset < 0 {
        return Err(Error::msg(format!("cannot write table {name} in {}", group.name())));
    }
    // SAFETY: `dataset` is a dataset id just created; from_id takes ownership of it.
    hdf5::sync::sync(|| unsafe { hdf5::from_id(dataset) }).map_err(|e| hdf5_error(format!("table {name}"), e))
}

/// Writes a table of `rows` (each packed as `columns` say) with the PyTables and ctapipe
/// attributes of [`Table`]; deflated, in chunks of up to 4096 rows.
pub fn write_shaped_table(
    group: &Group,
    name: &str,
    columns: &[(ColumnMeta, ShapedColumn)],
    rows: &[Vec<u8>],
) -> Result<()> {
    let shapes: Vec<(&str, ShapedColumn)> = columns.iter().map(|(m, c)| (m.name, *c)).collect();
    let (row_type, size) = shaped_row_type(&shapes)?;
    if let Some(bad) = rows.iter().find(|r| r.len() != size) {
        return Err(Error::msg(format!("table {name}: a row of {} bytes where the columns make {size}", bad.len())));
    }
    let dataset = create_table_dataset(group, name, &row_type, rows.len(), &rows.concat())?;
    string_attr(&dataset, "CLASS", "TABLE")?;
    string_attr(&dataset, "TITLE", "")?;
    string_attr(&dataset, "VERSION", "2.7")?;
    for (i, (c, _)) in columns.iter().enumerate() {
        string_attr(&dataset, &format!("FIELD_{i}_NAME"), c.name)?;
        string_attr(&dataset, &format!("CTAFIELD_{i}_NAME"), c.name)?;
        if !c.unit.is_empty() {
            string_attr(&dataset, &format!("CTAFIELD_{i}_UNIT"), c.unit)?;
            string_attr(&dataset, &format!("CTAFIELD_{i}_TRANSFORM"), "quantity")?;
        }
        if let ShapedColumn::Ascii(n) = columns[i].1 {
            string_attr(&dataset, &format!("CTAFIELD_{i}_TRANSFORM"), "string")?;
            write_attrs(&dataset, &[(&format!("CTAFIELD_{i}_MAXLEN"), Attr::Int(n as i64))])?;
        }
    }
    dataset
        .new_attr::<u64>()
        .create("NROWS")
        .and_then(|a| a.write_scalar(&(rows.len() as u64)))
        .map_err(|e| hdf5_error("cannot write NROWS", e))
}

/// The array shape of column `name` of a table's row type: `[]` for a scalar, else its
/// dimensions; None when the table has no such column.
fn shaped_column_dims(dataset: &Dataset, name: &str) -> Option<Vec<usize>> {
    use hdf5_sys::{h5d, h5t};
    let cname = std::ffi::CString::new(name).ok()?;
    // SAFETY: ids are checked and closed; the dims buffer has room for the rank HDF5 reports
    // (at most 32, H5S_MAX_RANK).
    hdf5::sync::sync(|| unsafe {
        let file_type = OwnedType(h5d::H5Dget_type(dataset.id()));
        if file_type.0 < 0 {
            return None;
        }
        let index = h5t::H5Tget_member_index(file_type.0, cname.as_ptr());
        if index < 0 {
            return None;
        }
        let member = OwnedType(h5t::H5Tget_member_type(file_type.0, index as u32));
        if member.0 < 0 {
            return None;
        }
        if h5t::H5Tget_class(member.0) != h5t::H5T_class_t::H5T_ARRAY {
            return Some(Vec::new());
        }
        let rank = h5t::H5Tget_array_ndims(member.0);
        if !(0..=32).contains(&rank) {
            return None;
        }
        let mut dims = [0 as hdf5_sys::h5::hsize_t; 32];
        (h5t::H5Tget_array_dims2(member.0, dims.as_mut_ptr()) == rank)
            .then(|| dims[..rank as usize].iter().map(|&d| d as usize).collect())
    })
}

/// The array dimensions of column `name` of a table (`[]` for a scalar); None when the table
/// has no such column.
pub fn column_dims(dataset: &Dataset, name: &str) -> Option<Vec<usize>> {
    shaped_column_dims(dataset, name)
}

/// The names of a table's numeric scalar columns (integers and floats, not arrays or
/// strings), in the row type's order.
pub fn scalar_column_names(dataset: &Dataset) -> Vec<String> {
    use hdf5_sys::{h5d, h5t};
    // SAFETY: ids are checked and closed; member names are copied, then freed with HDF5's
    // allocator.
    hdf5::sync::sync(|| unsafe {
        let file_type = OwnedType(h5d::H5Dget_type(dataset.id()));
        if file_type.0 < 0 || h5t::H5Tget_class(file_type.0) != h5t::H5T_class_t::H5T_COMPOUND {
            return Vec::new();
        }
        let n = h5t::H5Tget_nmembers(file_type.0).max(0) as u32;
        let mut names = Vec::new();
        for i in 0..n {
            let member = OwnedType(h5t::H5Tget_member_type(file_type.0, i));
            if member.0 < 0 {
                continue;
            }
            let class = h5t::H5Tget_class(member.0);
            if class != h5t::H5T_class_t::H5T_INTEGER && class != h5t::H5T_class_t::H5T_FLOAT {
                continue;
            }
            let raw = h5t::H5Tget_member_name(file_type.0, i);
            if raw.is_null() {
                continue;
            }
            names.push(std::ffi::CStr::from_ptr(raw).to_string_lossy().into_owned());
            hdf5_sys::h5::H5free_memory(raw.cast());
        }
        names
    })
}

/// Rows `range` of a table, as [`read_shaped_table`] reads all of them.
pub fn read_shaped_table_rows(
    dataset: &Dataset,
    names: &[&str],
    range: std::ops::Range<usize>,
    shape_of: impl Fn(&str, &[usize]) -> Option<ShapedColumn>,
) -> Result<(Vec<ShapedColumn>, Vec<Vec<u8>>)> {
    read_shaped(dataset, names, Some(range), shape_of)
}

/// Reads a table written by [`write_shaped_table`] (or by PyTables with the same columns) with
/// the array shapes its file has: `shape_of(name, dims)` turns each column's dimensions into
/// the shape to read it as (None refuses the table). Returns the packed rows; HDF5 converts
/// the values to the requested types.
pub fn read_shaped_table(
    dataset: &Dataset,
    names: &[&str],
    shape_of: impl Fn(&str, &[usize]) -> Option<ShapedColumn>,
) -> Result<(Vec<ShapedColumn>, Vec<Vec<u8>>)> {
    read_shaped(dataset, names, None, shape_of)
}

fn read_shaped(
    dataset: &Dataset,
    names: &[&str],
    range: Option<std::ops::Range<usize>>,
    shape_of: impl Fn(&str, &[usize]) -> Option<ShapedColumn>,
) -> Result<(Vec<ShapedColumn>, Vec<Vec<u8>>)> {
    let what = dataset.name();
    let mut shapes = Vec::new();
    for name in names {
        let dims = shaped_column_dims(dataset, name).ok_or_else(|| Error::msg(format!("{what}: no column {name}")))?;
        shapes.push(
            shape_of(name, &dims)
                .ok_or_else(|| Error::msg(format!("{what}: column {name} has an unexpected shape {dims:?}")))?,
        );
    }
    let columns: Vec<(&str, ShapedColumn)> = names.iter().copied().zip(shapes.iter().copied()).collect();
    let (row_type, size) = shaped_row_type(&columns)?;
    let total = dataset.shape().first().copied().unwrap_or(0);
    let range = range.unwrap_or(0..total);
    if range.start > range.end || range.end > total {
        return Err(Error::msg(format!("{what}: rows {range:?} of {total}")));
    }
    let n = range.end - range.start;
    let mut bytes = vec![0u8; n * size];
    if n == 0 {
        return Ok((shapes, Vec::new()));
    }
    let status = read_rows_raw(dataset, &row_type, range.start, n, &mut bytes);
    if status < 0 {
        return Err(Error::msg(format!("{what}: unreadable rows")));
    }
    Ok((shapes, bytes.chunks(size.max(1)).map(<[u8]>::to_vec).collect()))
}

/// Reads rows `first..first + n` of a one-dimensional dataset into `bytes` as `row_type` lays
/// them out (`bytes` must hold `n` rows of it; the range must lie inside the dataset). Returns
/// HDF5's status: negative on failure.
fn read_rows_raw(dataset: &Dataset, row_type: &OwnedType, first: usize, n: usize, bytes: &mut [u8]) -> i32 {
    use hdf5_sys::{h5d, h5p, h5s};
    // SAFETY: the callers size `bytes` for `n` rows of `row_type` and keep the range inside the
    // dataset; every space opened here is closed here.
    hdf5::sync::sync(|| unsafe {
        let file_space = h5d::H5Dget_space(dataset.id());
        if file_space < 0 {
            return -1;
        }
        let start = [first as hdf5_sys::h5::hsize_t];
        let count = [n as hdf5_sys::h5::hsize_t];
        let mem_space = h5s::H5Screate_simple(1, count.as_ptr(), std::ptr::null());
        let mut status = if mem_space < 0 {
            -1
        } else {
            h5s::H5Sselect_hyperslab(
                file_space,
                h5s::H5S_seloper_t::H5S_SELECT_SET,
                start.as_ptr(),
                std::ptr::null(),
                count.as_ptr(),
                std::ptr::null(),
            )
        };
        if status >= 0 {
            status = h5d::H5Dread(
                dataset.id(),
                row_type.0,
                mem_space,
                file_space,
                h5p::H5P_DEFAULT,
                bytes.as_mut_ptr().cast(),
            );
        }
        if mem_space >= 0 {
            h5s::H5Sclose(mem_space);
        }
        h5s::H5Sclose(file_space);
        status
    })
}

/// Copies the dataset at `path` of `src` (with its attributes) to the same path in `dst`, as
/// HDF5 stores it (H5Ocopy: no decoding, no type knowledge needed). Returns false when `src`
/// has no such dataset.
pub fn copy_dataset(src: &hdf5::File, dst: &hdf5::File, path: &str) -> Result<bool> {
    if src.dataset(path).is_err() {
        return Ok(false);
    }
    let (parent, name) = path.rsplit_once('/').ok_or_else(|| Error::msg(format!("dataset path {path:?}")))?;
    let group = ensure_groups(dst, if parent.is_empty() { "/" } else { parent })?;
    let (from, to) = (
        std::ffi::CString::new(path).map_err(|_| Error::msg(format!("dataset path {path:?}")))?,
        std::ffi::CString::new(name).map_err(|_| Error::msg(format!("dataset path {path:?}")))?,
    );
    // SAFETY: both locations are open files/groups; names are NUL-terminated.
    let status = hdf5::sync::sync(|| unsafe {
        hdf5_sys::h5o::H5Ocopy(
            src.id(),
            from.as_ptr(),
            group.id(),
            to.as_ptr(),
            hdf5_sys::h5p::H5P_DEFAULT,
            hdf5_sys::h5p::H5P_DEFAULT,
        )
    });
    if status < 0 {
        return Err(Error::msg(format!("cannot copy {path} from {} into {}", src.filename(), dst.filename())));
    }
    Ok(true)
}

/// One column of a table whose columns are chosen at run time (their names depend on the
/// telescopes, their set on the kind of data), given whole.
pub struct NamedColumn {
    pub name: String,
    pub unit: &'static str,
    pub values: ColumnValues,
}

pub enum ColumnValues {
    I64(Vec<i64>),
    F64(Vec<f64>),
    /// Fixed-length ASCII strings of this many bytes (longer ones are cut, as PyTables does).
    Ascii(usize, Vec<String>),
}

impl ColumnValues {
    fn len(&self) -> usize {
        match self {
            ColumnValues::I64(v) => v.len(),
            ColumnValues::F64(v) => v.len(),
            ColumnValues::Ascii(_, v) => v.len(),
        }
    }
}

/// Writes `columns` (all of one length) as a PyTables/ctapipe table `name` in `group`.
pub fn write_named_columns(group: &Group, name: &str, columns: &[NamedColumn]) -> Result<()> {
    let n = columns.first().map_or(0, |c| c.values.len());
    if let Some(c) = columns.iter().find(|c| c.values.len() != n) {
        return Err(Error::msg(format!("table {name}: column {} has {} rows, not {n}", c.name, c.values.len())));
    }
    let meta: Vec<(ColumnMeta, ShapedColumn)> = columns
        .iter()
        .map(|c| {
            let shape = match &c.values {
                ColumnValues::I64(_) => ShapedColumn::I64,
                ColumnValues::F64(_) => ShapedColumn::F64,
                ColumnValues::Ascii(len, _) => ShapedColumn::Ascii(*len),
            };
            (ColumnMeta::new(&c.name, c.unit), shape)
        })
        .collect();
    let rows: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut row = Vec::new();
            for c in columns {
                match &c.values {
                    ColumnValues::I64(v) => row.extend_from_slice(&v[i].to_le_bytes()),
                    ColumnValues::F64(v) => row.extend_from_slice(&v[i].to_le_bytes()),
                    ColumnValues::Ascii(len, v) => {
                        let mut bytes: Vec<u8> =
                            v[i].chars().map(|ch| if ch.is_ascii() { ch as u8 } else { b'?' }).take(*len).collect();
                        bytes.resize(*len, 0);
                        row.extend_from_slice(&bytes);
                    }
                }
            }
            row
        })
        .collect();
    write_shaped_table(group, name, &meta, &rows)
}

/// Copies every dataset of `src` under `group_path` (recursively, each with its attributes, as
/// [`copy_dataset`] does) into the same place in `dst`, except the dataset at `skip`; groups
/// are created PyTables-style. Members are visited in name order, so the copy is deterministic.
pub fn copy_datasets_except(src: &hdf5::File, dst: &hdf5::File, group_path: &str, skip: &str) -> Result<()> {
    let group = src.group(group_path).map_err(|e| hdf5_error(format!("{}: group {group_path}", src.filename()), e))?;
    let mut names = group.member_names().map_err(|e| hdf5_error(format!("{}: {group_path}", src.filename()), e))?;
    names.sort();
    for name in names {
        let path = format!("{}/{name}", group_path.trim_end_matches('/'));
        if path == skip {
            continue;
        }
        if group.dataset(&name).is_ok() {
            copy_dataset(src, dst, &path)?;
        } else if group.group(&name).is_ok() {
            ensure_groups(dst, &path)?;
            copy_datasets_except(src, dst, &path, skip)?;
        }
    }
    Ok(())
}

/// Copies the attributes of `src` that [`string_attr`] and [`write_attrs`] write (strings,
/// integers, floats) onto `dst`, except those named in `except`; others are refused, naming
/// them, rather than dropped.
pub fn copy_attributes(src: &Location, dst: &Location, except: &[&str]) -> Result<()> {
    let mut names = src.attr_names().map_err(|e| hdf5_error(format!("attributes of {}", src.name()), e))?;
    names.sort();
    for name in names.iter().filter(|n| !except.contains(&n.as_str())) {
        let attr = src.attr(name).map_err(|e| hdf5_error(format!("attribute {name} of {}", src.name()), e))?;
        use hdf5::types::TypeDescriptor as T;
        let descriptor = attr.dtype().and_then(|t| t.to_descriptor());
        let unreadable = |e| hdf5_error(format!("attribute {name} of {}", src.name()), e);
        match descriptor.map_err(unreadable)? {
            T::VarLenUnicode => {
                string_attr(dst, name, attr.read_scalar::<VarLenUnicode>().map_err(unreadable)?.as_str())?
            }
            T::Float(_) => write_attrs(dst, &[(name, Attr::Float(attr.read_scalar::<f64>().map_err(unreadable)?))])?,
            T::Integer(_) | T::Unsigned(_) => {
                write_attrs(dst, &[(name, Attr::Int(attr.read_scalar::<i64>().map_err(unreadable)?))])?
            }
            other => {
                return Err(Error::msg(format!(
                    "attribute {name} of {}: type {other:?} is not one this copy knows",
                    src.name()
                )))
            }
        }
    }
    Ok(())
}

/// Writes, as table `name` of `group`, the rows `keep` (ascending) of the table `src` with
/// every column as stored (type, order, attributes) followed by the columns `extra` (one value
/// per kept row; numbers only). For adding derived columns to a product another stage made
/// without knowing its row type (sst1mpipe's DL2 gains `event_type` this way).
pub fn write_extended_table(
    src: &Dataset,
    keep: &[usize],
    extra: &[NamedColumn],
    group: &Group,
    name: &str,
) -> Result<()> {
    use hdf5_sys::{h5d, h5t};
    let what = src.name();
    let failed = |step: &str| Error::msg(format!("{what}: cannot extend the table ({step})"));
    if let Some(c) = extra.iter().find(|c| c.values.len() != keep.len()) {
        return Err(Error::msg(format!(
            "{what}: column {} has {} values for {} rows",
            c.name,
            c.values.len(),
            keep.len()
        )));
    }
    let total = src.shape().first().copied().unwrap_or(0);
    if keep.windows(2).any(|w| w[0] >= w[1]) || keep.last().is_some_and(|&k| k >= total) {
        return Err(failed("rows to keep must ascend within the table"));
    }
    // SAFETY: every id is checked before use and closed by OwnedType; member names are copied
    // to CStrings and freed with HDF5's allocator; offsets stay within the sizes HDF5 reports.
    let (file_type, row_size, new_type, new_size, n_members) = hdf5::sync::sync(|| unsafe {
        let file_type = OwnedType(h5d::H5Dget_type(src.id()));
        if file_type.0 < 0 || h5t::H5Tget_class(file_type.0) != h5t::H5T_class_t::H5T_COMPOUND {
            return Err(failed("not a table"));
        }
        let row_size = h5t::H5Tget_size(file_type.0);
        let extra_size: usize = extra.iter().map(|_| 8).sum();
        let new_type = OwnedType(h5t::H5Tcreate(h5t::H5T_class_t::H5T_COMPOUND, row_size + extra_size));
        if new_type.0 < 0 {
            return Err(failed("compound"));
        }
        let n = h5t::H5Tget_nmembers(file_type.0).max(0) as u32;
        for i in 0..n {
            let member = OwnedType(h5t::H5Tget_member_type(file_type.0, i));
            let raw = h5t::H5Tget_member_name(file_type.0, i);
            if member.0 < 0 || raw.is_null() {
                return Err(failed("member"));
            }
            let offset = h5t::H5Tget_member_offset(file_type.0, i);
            let status = h5t::H5Tinsert(new_type.0, raw, offset, member.0);
            hdf5_sys::h5::H5free_memory(raw.cast());
            if status < 0 {
                return Err(failed("member"));
            }
        }
        for (j, c) in extra.iter().enumerate() {
            let t = match c.values {
                ColumnValues::F64(_) => *h5t::H5T_IEEE_F64LE,
                ColumnValues::I64(_) => *h5t::H5T_STD_I64LE,
                ColumnValues::Ascii(..) => return Err(failed("string columns cannot be added")),
            };
            let cname = std::ffi::CString::new(c.name.as_str()).map_err(|_| failed("column name"))?;
            if h5t::H5Tinsert(new_type.0, cname.as_ptr(), row_size + 8 * j, t) < 0 {
                return Err(failed(&c.name));
            }
        }
        Ok((file_type, row_size, new_type, row_size + extra_size, n))
    })?;
    // The kept rows in the stored layout, a block at a time, each followed by its new values.
    let mut bytes = Vec::with_capacity(keep.len() * new_size);
    let mut next = 0;
    const BLOCK: usize = 65_536;
    let mut block = Vec::new();
    for start in (0..total).step_by(BLOCK) {
        let end = (start + BLOCK).min(total);
        let first = next;
        while next < keep.len() && keep[next] < end {
            next += 1;
        }
        if first == next {
            continue;
        }
        block.resize((end - start) * row_size, 0);
        let status = read_rows_raw(src, &file_type, start, end - start, &mut block);
        if status < 0 {
            return Err(Error::msg(format!("{what}: unreadable rows {start}..{end}")));
        }
        for (k, &row) in keep[first..next].iter().enumerate() {
            let at = (row - start) * row_size;
            bytes.extend_from_slice(&block[at..at + row_size]);
            for c in extra {
                match &c.values {
                    ColumnValues::F64(v) => bytes.extend_from_slice(&v[first + k].to_le_bytes()),
                    ColumnValues::I64(v) => bytes.extend_from_slice(&v[first + k].to_le_bytes()),
                    ColumnValues::Ascii(..) => unreachable!("refused above"),
                }
            }
        }
    }
    let dataset = create_table_dataset(group, name, &new_type, keep.len(), &bytes)?;
    copy_attributes(src, &dataset, &["NROWS"])?;
    for (j, c) in extra.iter().enumerate() {
        let i = n_members as usize + j;
        string_attr(&dataset, &format!("FIELD_{i}_NAME"), &c.name)?;
        string_attr(&dataset, &format!("CTAFIELD_{i}_NAME"), &c.name)?;
        if !c.unit.is_empty() {
            string_attr(&dataset, &format!("CTAFIELD_{i}_UNIT"), c.unit)?;
            string_attr(&dataset, &format!("CTAFIELD_{i}_TRANSFORM"), "quantity")?;
        }
    }
    dataset
        .new_attr::<u64>()
        .create("NROWS")
        .and_then(|a| a.write_scalar(&(keep.len() as u64)))
        .map_err(|e| hdf5_error("cannot write NROWS", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(H5Type, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    struct Row {
        x: f64,
    }

    #[test]
    fn a_byte_damaged_inside_a_table_fails_the_read() {
        let dir = std::env::temp_dir().join(format!("sst1mflow-fletcher-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.h5");
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let rows: Vec<Row> = (0..200_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                Row { x: f64::from_bits(state) }
            })
            .collect();
        let file = create_product_file(&path, "k", "v").unwrap();
        let mut table = Table::<Row>::create(&file, "t", 16_384, &[ColumnMeta::new("x", "")]).unwrap();
        for r in &rows {
            table.push(*r).unwrap();
        }
        table.finish().unwrap();
        close_product_file(file).unwrap();
        let read = || hdf5::File::open(&path).and_then(|f| f.dataset("t")?.read_raw::<Row>());
        assert_eq!(read().unwrap().len(), rows.len());
        // Every chunk is checksummed, whatever deflate does with it.
        let filters = hdf5::File::open(&path).unwrap().dataset("t").unwrap().filters();
        assert!(filters.contains(&hdf5::filters::Filter::Fletcher32), "{filters:?}");
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        assert!(read().is_err(), "a flipped byte in the data must fail the read");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
