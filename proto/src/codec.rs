//! The protobuf codec of the generated Kyro client and server: prost's, but
//! decoding each message from one contiguous slice.
//!
//! Tonic hands a decoder the message as a `DecodeBuf`, a length-limited view
//! of its receive buffer whose every `Buf` call re-checks the limit. prost
//! reads packed `repeated float` fields one element at a time through that
//! interface, about 40 instructions a float: 15,000 for one 384-dim query
//! vector, the largest single cost of a Search on the server's I/O thread
//! (measured with callgrind, docs/benchmarks.md). The message bytes already
//! sit in one buffer, so taking them out costs nothing (`copy_to_bytes` on
//! a `BytesMut` splits it) and decoding from a plain slice lets each element
//! compile to a bounds check and a load.

use std::marker::PhantomData;

use bytes::Buf;
use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::ProstEncoder;

/// The codec named in `build.rs` (`codec_path`): encodes `T` with prost,
/// decodes `U` from a contiguous slice.
#[derive(Debug, Clone)]
pub struct KyroCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for KyroCodec<T, U> {
    fn default() -> Self {
        Self {
            _types: PhantomData,
        }
    }
}

impl<T, U> Codec for KyroCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = SliceDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        SliceDecoder {
            _message: PhantomData,
        }
    }
}

/// Decodes `U` from the message's bytes as one slice.
#[derive(Debug, Clone)]
pub struct SliceDecoder<U> {
    _message: PhantomData<U>,
}

impl<U: Message + Default> Decoder for SliceDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        U::decode(&bytes[..])
            .map(Some)
            .map_err(|e| decode_refusal(&e))
    }
}

/// How deep a filter may nest: the engine's `MAX_FILTER_DEPTH`, repeated
/// here for the decoder's message (this crate does not depend on the
/// engine; a server test checks that the two agree).
pub const MAX_FILTER_DEPTH: usize = 16;

/// The status of a request message that does not decode. The bytes come
/// from the client, so this is the client's mistake: INVALID_ARGUMENT (prost's
/// own codec answers INTERNAL, which tells the client to blame the server).
/// Messages nested more than 100 levels deep (prost's recursion limit; in
/// practice only filters) are named as such, with the depth that is allowed.
pub fn decode_refusal(error: &prost::DecodeError) -> Status {
    let text = error.to_string();
    if text.contains("recursion limit") {
        Status::invalid_argument(format!(
            "filter: nested too deeply to decode ({text}); a filter may nest at most \
             {MAX_FILTER_DEPTH} levels"
        ))
    } else {
        Status::invalid_argument(format!("request: not a valid message: {text}"))
    }
}
