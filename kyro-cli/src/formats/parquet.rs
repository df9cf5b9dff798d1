//! Parquet through arrow-rs. Written: columns `id` (uint64), `vector`
//! (fixed-size list of float32, the instance's dimension), `payload` (the
//! payload as JSON text), snappy-compressed, one row group per 10,000 rows
//! at most. Read: `vector` as a fixed-size list, list or large list of
//! float32 or float64; `id` (uint64, or a non-negative int64/int32) and
//! `payload` (string) may be absent. Other columns are ignored.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, RecordBatch, StringArray, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::Value as Json;

use super::{Place, Record, RecordReader, RecordWriter};
use crate::error::CliError;
use crate::payload::{self, Payload};

/// Rows buffered before a record batch is handed to the writer.
const BATCH_ROWS: usize = 10_000;

/// Reads a Parquet file batch by batch.
pub struct ParquetReader {
    path: PathBuf,
    batches: ParquetRecordBatchReader,
    total: u64,
    /// The current batch and the next row in it.
    current: Option<(RecordBatch, usize)>,
    row: u64,
}

impl ParquetReader {
    /// Opens `path` and checks its columns.
    pub fn open(path: &Path) -> Result<Self, CliError> {
        let file = File::open(path).map_err(|e| CliError::io(path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| CliError::input(path, format!("not a readable Parquet file: {e}")))?;
        let total = builder.metadata().file_metadata().num_rows().max(0) as u64;
        check_schema(path, builder.schema())?;
        let batches = builder
            .with_batch_size(4096)
            .build()
            .map_err(|e| CliError::input(path, format!("cannot read: {e}")))?;
        Ok(ParquetReader {
            path: path.to_owned(),
            batches,
            total,
            current: None,
            row: 0,
        })
    }

    fn record_at(&self, batch: &RecordBatch, i: usize) -> Result<Record, CliError> {
        let place = Place::Row(self.row);
        let fail = |message: String| CliError::input_at(&self.path, place, message);
        let id = match batch.column_by_name("id") {
            None => None,
            Some(ids) if ids.is_null(i) => return Err(fail("id is null".into())),
            Some(ids) => Some(match ids.data_type() {
                DataType::UInt64 => ids.as_primitive::<UInt64Type>().value(i),
                DataType::Int64 => {
                    let id = ids.as_primitive::<Int64Type>().value(i);
                    u64::try_from(id).map_err(|_| fail(format!("id {id} is negative")))?
                }
                DataType::Int32 => {
                    let id = ids.as_primitive::<Int32Type>().value(i);
                    u64::try_from(id).map_err(|_| fail(format!("id {id} is negative")))?
                }
                other => return Err(fail(format!("id column of type {other} (expected uint64)"))),
            }),
        };
        let vectors = batch
            .column_by_name("vector")
            .ok_or_else(|| fail("no vector column".into()))?;
        if vectors.is_null(i) {
            return Err(fail("vector is null".into()));
        }
        let values: ArrayRef = match vectors.data_type() {
            DataType::FixedSizeList(..) => vectors.as_fixed_size_list().value(i),
            DataType::List(_) => vectors.as_list::<i32>().value(i),
            DataType::LargeList(_) => vectors.as_list::<i64>().value(i),
            other => return Err(fail(format!("vector column of type {other}"))),
        };
        if values.null_count() > 0 {
            return Err(fail("vector has null components".into()));
        }
        let vector = match values.data_type() {
            DataType::Float32 => values.as_primitive::<Float32Type>().values().to_vec(),
            DataType::Float64 => values
                .as_primitive::<Float64Type>()
                .values()
                .iter()
                .map(|&x| x as f32)
                .collect(),
            other => return Err(fail(format!("vector components of type {other}"))),
        };
        let payload = match batch.column_by_name("payload") {
            None => Payload::new(),
            Some(column) if column.is_null(i) => Payload::new(),
            Some(column) => {
                let text = match column.data_type() {
                    DataType::Utf8 => column.as_string::<i32>().value(i),
                    DataType::LargeUtf8 => column.as_string::<i64>().value(i),
                    other => return Err(fail(format!("payload column of type {other}"))),
                };
                payload::from_json_text(text).map_err(fail)?
            }
        };
        Ok(Record {
            id,
            vector,
            payload,
            place,
        })
    }
}

/// Refuses a file whose columns cannot be points, before any row is read.
fn check_schema(path: &Path, schema: &SchemaRef) -> Result<(), CliError> {
    let vector = schema.field_with_name("vector").map_err(|_| {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        CliError::input(
            path,
            format!("no `vector` column (columns: {})", names.join(", ")),
        )
    })?;
    let item = match vector.data_type() {
        DataType::FixedSizeList(item, _) | DataType::List(item) | DataType::LargeList(item) => {
            item.data_type()
        }
        other => {
            return Err(CliError::input(
                path,
                format!("the `vector` column is {other}; expected a list of float32"),
            ))
        }
    };
    if !matches!(item, DataType::Float32 | DataType::Float64) {
        return Err(CliError::input(
            path,
            format!("the `vector` column holds {item}; expected float32 (or float64)"),
        ));
    }
    if let Ok(id) = schema.field_with_name("id") {
        if !matches!(
            id.data_type(),
            DataType::UInt64 | DataType::Int64 | DataType::Int32
        ) {
            return Err(CliError::input(
                path,
                format!("the `id` column is {}; expected uint64", id.data_type()),
            ));
        }
    }
    if let Ok(payload) = schema.field_with_name("payload") {
        if !matches!(payload.data_type(), DataType::Utf8 | DataType::LargeUtf8) {
            return Err(CliError::input(
                path,
                format!(
                    "the `payload` column is {}; expected a JSON string",
                    payload.data_type()
                ),
            ));
        }
    }
    Ok(())
}

impl RecordReader for ParquetReader {
    fn next_record(&mut self) -> Result<Option<Record>, CliError> {
        loop {
            if let Some((batch, i)) = &self.current {
                if *i < batch.num_rows() {
                    let record = self.record_at(batch, *i)?;
                    if let Some((_, i)) = &mut self.current {
                        *i += 1;
                    }
                    self.row += 1;
                    return Ok(Some(record));
                }
            }
            match self.batches.next() {
                None => return Ok(None),
                Some(Ok(batch)) => self.current = Some((batch, 0)),
                Some(Err(e)) => {
                    return Err(CliError::input_at(
                        &self.path,
                        Place::Row(self.row),
                        format!("cannot read: {e}"),
                    ))
                }
            }
        }
    }

    fn total(&self) -> Option<u64> {
        Some(self.total)
    }
}

/// Writes a Parquet file.
pub struct ParquetWriter {
    path: PathBuf,
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    dim: usize,
    ids: Vec<u64>,
    values: Vec<f32>,
    payloads: Vec<String>,
}

impl ParquetWriter {
    /// Creates (truncates) `path` for vectors of `dim` floats.
    pub fn create(path: &Path, dim: usize) -> Result<Self, CliError> {
        let file = File::create(path).map_err(|e| CliError::io(path, e))?;
        let schema = Arc::new(schema(dim)?);
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_size(BATCH_ROWS)
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(properties))
            .map_err(|e| CliError::io(path, std::io::Error::other(e)))?;
        Ok(ParquetWriter {
            path: path.to_owned(),
            writer,
            schema,
            dim,
            ids: Vec::new(),
            values: Vec::new(),
            payloads: Vec::new(),
        })
    }

    fn flush_batch(&mut self) -> Result<(), CliError> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let values = Arc::new(Float32Array::from(std::mem::take(&mut self.values)));
        let vectors = FixedSizeListArray::try_new(item, self.dim as i32, values, None)
            .map_err(|e| CliError::io(&self.path, std::io::Error::other(e)))?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(std::mem::take(&mut self.ids))),
            Arc::new(vectors),
            Arc::new(StringArray::from(std::mem::take(&mut self.payloads))),
        ];
        let batch = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| CliError::io(&self.path, std::io::Error::other(e)))?;
        self.writer
            .write(&batch)
            .map_err(|e| CliError::io(&self.path, std::io::Error::other(e)))
    }
}

/// The schema of written files.
fn schema(dim: usize) -> Result<Schema, CliError> {
    let dim = i32::try_from(dim).map_err(|_| CliError::usage("dimension too large"))?;
    Ok(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new(
            "vector",
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), dim),
            false,
        ),
        Field::new("payload", DataType::Utf8, true),
    ]))
}

impl RecordWriter for ParquetWriter {
    fn write(&mut self, id: u64, vector: &[f32], payload: &Payload) -> Result<(), CliError> {
        if vector.len() != self.dim {
            return Err(CliError::input(
                &self.path,
                format!(
                    "doc id {id} has {} dimensions, the file {}",
                    vector.len(),
                    self.dim
                ),
            ));
        }
        self.ids.push(id);
        self.values.extend_from_slice(vector);
        self.payloads
            .push(Json::Object(payload::to_json(payload)).to_string());
        if self.ids.len() >= BATCH_ROWS {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), CliError> {
        self.flush_batch()?;
        let this = *self;
        let file = this
            .writer
            .into_inner()
            .map_err(|e| CliError::io(&this.path, std::io::Error::other(e)))?;
        file.sync_all().map_err(|e| CliError::io(&this.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{Float64Builder, ListBuilder};
    use kyro_proto::v1 as pb;

    #[test]
    fn points_round_trip_with_payloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.parquet");
        let mut writer = Box::new(ParquetWriter::create(&path, 3).unwrap());
        let mut payload = Payload::new();
        payload.insert(
            "tool".into(),
            pb::Value {
                kind: Some(pb::value::Kind::StringValue("cargo".into())),
            },
        );
        for id in 0..25_000u64 {
            let p = if id.is_multiple_of(2) {
                payload.clone()
            } else {
                Payload::new()
            };
            writer
                .write(id * 3, &[id as f32, 0.1, -(id as f32)], &p)
                .unwrap();
        }
        writer.finish().unwrap();
        let mut reader = ParquetReader::open(&path).unwrap();
        assert_eq!(reader.total(), Some(25_000));
        let mut n = 0u64;
        while let Some(record) = reader.next_record().unwrap() {
            assert_eq!(record.id, Some(n * 3));
            assert_eq!(record.vector, vec![n as f32, 0.1, -(n as f32)]);
            assert_eq!(
                record.payload.len(),
                if n.is_multiple_of(2) { 1 } else { 0 }
            );
            assert_eq!(record.place, Place::Row(n));
            n += 1;
        }
        assert_eq!(n, 25_000);
    }

    /// What pandas/pyarrow write by default: `list<double>`, no id column.
    #[test]
    fn reads_variable_lists_of_doubles_without_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.parquet");
        let mut lists = ListBuilder::new(Float64Builder::new());
        lists.values().append_slice(&[1.0, 2.0]);
        lists.append(true);
        lists.values().append_slice(&[3.0, 4.5]);
        lists.append(true);
        let lists = lists.finish();
        let batch =
            RecordBatch::try_from_iter(vec![("vector", Arc::new(lists) as ArrayRef)]).unwrap();
        let mut writer =
            ArrowWriter::try_new(File::create(&path).unwrap(), batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let mut reader = ParquetReader::open(&path).unwrap();
        let first = reader.next_record().unwrap().unwrap();
        let second = reader.next_record().unwrap().unwrap();
        assert_eq!((first.id, first.vector), (None, vec![1.0, 2.0]));
        assert_eq!(second.vector, vec![3.0, 4.5]);
        assert!(reader.next_record().unwrap().is_none());
    }

    #[test]
    fn a_file_without_a_vector_column_is_refused_naming_its_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.parquet");
        let batch = RecordBatch::try_from_iter(vec![(
            "embedding",
            Arc::new(UInt64Array::from(vec![1u64])) as ArrayRef,
        )])
        .unwrap();
        let mut writer =
            ArrowWriter::try_new(File::create(&path).unwrap(), batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let error = ParquetReader::open(&path).err().unwrap().to_string();
        assert!(
            error.contains("no `vector` column (columns: embedding)"),
            "{error}"
        );
    }
}
