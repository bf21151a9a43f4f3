use portreg_sys as sys;

use crate::error::check;
use crate::Error;

/// An incremental reader for the daemons' wire framing,
/// `[u8 version = 1][u32 little-endian body length][body]`: feed it bytes as
/// they arrive, split anywhere, and take whole bodies out. A declared length
/// above the limit is refused before anything is allocated. One reader per
/// stream.
///
/// ```
/// use portreg::FrameReader;
///
/// let body = portreg::encode_ready(49152);
/// let mut wire = vec![1u8];
/// wire.extend_from_slice(&(body.len() as u32).to_le_bytes());
/// wire.extend_from_slice(&body);
///
/// let mut reader = FrameReader::new();
/// let (first, rest) = wire.split_at(3); // bytes arrive in two pieces
/// let mut input = first;
/// assert_eq!(reader.next_frame(&mut input)?, None);
/// let mut input = rest;
/// let got = reader.next_frame(&mut input)?.expect("a whole frame");
/// assert_eq!(portreg::decode_port(got)?, 49152);
/// assert!(input.is_empty());
/// reader.finish()?; // the stream ended between frames
/// # Ok::<(), portreg::Error>(())
/// ```
pub struct FrameReader {
    // Boxed so the C struct never moves while initialized.
    raw: Box<sys::portreg_frame_reader_t>,
}

impl FrameReader {
    /// A reader with the default limit (16 MiB bodies).
    ///
    /// ```
    /// let reader = portreg::FrameReader::new();
    /// assert_eq!(reader.finish(), Ok(()));
    /// ```
    pub fn new() -> FrameReader {
        FrameReader::with_max_body(0)
    }

    /// A reader refusing bodies longer than `max_body` bytes (0: the
    /// default; larger than 16 MiB: 16 MiB).
    ///
    /// ```
    /// let mut reader = portreg::FrameReader::with_max_body(4);
    /// let mut input: &[u8] = &[1, 5, 0, 0, 0];
    /// assert_eq!(reader.next_frame(&mut input), Err(portreg::Error::TooLarge));
    /// ```
    pub fn with_max_body(max_body: usize) -> FrameReader {
        let mut raw = Box::new(sys::portreg_frame_reader_t { opaque: [0; 64] });
        // SAFETY: raw is a writable reader struct at a stable heap address.
        unsafe { sys::portreg_frame_reader_init(&mut *raw, max_body) };
        FrameReader { raw }
    }

    /// Consumes bytes from the front of `input` until a frame completes or
    /// `input` is empty, advancing `input` past what was used. Returns the
    /// body of the completed frame (valid until the next call), `None` when
    /// more bytes are needed, or the stream's error ([`Error::Version`],
    /// [`Error::TooLarge`]: every later call repeats it).
    ///
    /// ```
    /// let mut reader = portreg::FrameReader::new();
    /// let mut input: &[u8] = &[1, 1, 0, 0, 0, 0xAA, 1, 0, 0, 0, 0];
    /// assert_eq!(reader.next_frame(&mut input)?, Some(&[0xAA][..]));
    /// assert_eq!(reader.next_frame(&mut input)?, Some(&[][..]));
    /// assert_eq!(reader.next_frame(&mut input)?, None);
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn next_frame(&mut self, input: &mut &[u8]) -> Result<Option<&[u8]>, Error> {
        let data: &[u8] = input;
        let mut consumed = 0usize;
        let mut body: *const u8 = std::ptr::null();
        let mut body_len = 0usize;
        // SAFETY: the reader is initialized and exclusively borrowed; data is
        // a readable slice (non-NULL pointer even when empty); the three
        // out-pointers are valid.
        let rc = unsafe {
            sys::portreg_frame_feed(
                &mut *self.raw,
                data.as_ptr(),
                data.len(),
                &mut consumed,
                &mut body,
                &mut body_len,
            )
        };
        *input = &data[consumed.min(data.len())..];
        check(rc)?;
        if rc == 0 {
            return Ok(None);
        }
        if body_len == 0 || body.is_null() {
            return Ok(Some(&[]));
        }
        // SAFETY: on 1 the C side set body to body_len readable bytes that
        // stay valid until the next call on the reader; the returned slice
        // borrows self mutably, so no next call can happen while it lives.
        Ok(Some(unsafe { std::slice::from_raw_parts(body, body_len) }))
    }

    /// Call at the end of the stream: `Ok` if it ended between frames,
    /// [`Error::Truncated`] if inside one, or the stream's earlier error.
    ///
    /// ```
    /// let mut reader = portreg::FrameReader::new();
    /// let mut input: &[u8] = &[1, 9, 0];
    /// assert_eq!(reader.next_frame(&mut input)?, None);
    /// assert_eq!(reader.finish(), Err(portreg::Error::Truncated));
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn finish(&self) -> Result<(), Error> {
        // SAFETY: the reader is initialized; the call only reads it.
        check(unsafe { sys::portreg_frame_finish(&*self.raw) })
    }
}

impl Default for FrameReader {
    fn default() -> FrameReader {
        FrameReader::new()
    }
}

impl Drop for FrameReader {
    fn drop(&mut self) {
        // SAFETY: initialized in with_max_body, finished exactly once.
        unsafe { sys::portreg_frame_reader_fini(&mut *self.raw) }
    }
}

impl std::fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader").finish_non_exhaustive()
    }
}
