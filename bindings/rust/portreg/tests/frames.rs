//! The frame reader: any split of the stream, errors, end of stream.
use portreg::{Error, FrameReader};

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn read_all(reader: &mut FrameReader, mut input: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let mut bodies = Vec::new();
    while let Some(body) = reader.next_frame(&mut input)? {
        bodies.push(body.to_vec());
    }
    assert!(input.is_empty());
    Ok(bodies)
}

#[test]
fn every_split_of_three_frames_yields_the_same_bodies() {
    let bodies = [portreg::encode_ready(49152), vec![], vec![0xAB; 300]];
    let wire: Vec<u8> = bodies.iter().flat_map(|b| frame(b)).collect();
    for split in 0..=wire.len() {
        let mut reader = FrameReader::new();
        let mut got = read_all(&mut reader, &wire[..split]).unwrap();
        got.extend(read_all(&mut reader, &wire[split..]).unwrap());
        assert_eq!(got, bodies, "split at {split}");
        reader.finish().unwrap();
    }
    // One byte at a time.
    let mut reader = FrameReader::new();
    let got: Vec<Vec<u8>> =
        wire.chunks(1).flat_map(|c| read_all(&mut reader, c).unwrap()).collect();
    assert_eq!(got, bodies);
}

#[test]
fn a_wrong_version_breaks_the_stream_for_good() {
    let mut reader = FrameReader::new();
    let mut input: &[u8] = &[2, 0, 0, 0, 0, 9];
    assert_eq!(reader.next_frame(&mut input), Err(Error::Version));
    assert_eq!(input, &[0, 0, 0, 0, 9]);
    let mut good: &[u8] = &frame(b"x");
    assert_eq!(reader.next_frame(&mut good), Err(Error::Version));
    assert_eq!(reader.finish(), Err(Error::Version));
}

#[test]
fn a_body_above_the_limit_is_refused_from_its_header() {
    let mut reader = FrameReader::with_max_body(10);
    let mut ok: &[u8] = &frame(&[7; 10]);
    assert_eq!(reader.next_frame(&mut ok).unwrap(), Some(&[7u8; 10][..]));
    let mut big: &[u8] = &[1, 11, 0, 0, 0];
    assert_eq!(reader.next_frame(&mut big), Err(Error::TooLarge));
    assert_eq!(reader.finish(), Err(Error::TooLarge));
}

#[test]
fn a_stream_ending_inside_a_frame_is_truncated() {
    let wire = frame(b"hello");
    for cut in 1..wire.len() {
        let mut reader = FrameReader::new();
        assert!(read_all(&mut reader, &wire[..cut]).unwrap().is_empty());
        assert_eq!(reader.finish(), Err(Error::Truncated), "cut at {cut}");
    }
}
