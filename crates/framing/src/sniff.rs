//! Naming what a peer that does not speak dronecast sent, so the log says "an HTTP request"
//! rather than "bad length".

use std::fmt::Write;

use crate::MAX_CONTROL_LEN;

const HTTP_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// The pickle opcode that opens every pickle of protocol 2 or later.
const PICKLE_PROTO: u8 = 0x80;

/// True when `seen` starts like an HTTP request (a web browser, curl), so that a server can
/// answer it in HTTP and say which port it wanted.
pub fn is_http_request(seen: &[u8]) -> bool {
    HTTP_METHODS.iter().any(|m| seen.starts_with(m))
}

/// True when `seen` starts like a dronecast message: a big-endian length whose high bytes are
/// zero (no message is 2^40 bytes long). A dronecast peer that dialled an HTTP port sends this.
pub fn is_dronecast(seen: &[u8]) -> bool {
    seen.len() >= 3 && seen[..3] == [0, 0, 0]
}

/// Describes the first bytes a peer sent, for an error message.
pub fn describe(seen: &[u8]) -> String {
    if HTTP_METHODS.iter().any(|m| seen.starts_with(m)) {
        return format!("an HTTP request ({})", first_line(seen));
    }
    if seen.starts_with(b"HTTP/") {
        return format!("an HTTP response ({})", first_line(seen));
    }
    if seen.starts_with(&[0x16, 0x03]) {
        return "a TLS handshake (is the peer configured for https/TLS?)".into();
    }
    if seen.starts_with(b"SSH-") {
        return "an SSH greeting".into();
    }
    if let (Some(le), Some(prefix)) = (little_endian_len(seen), prefix(seen)) {
        if seen.get(8) == Some(&PICKLE_PROTO) {
            return format!(
                "a Python pickle stream with a little-endian length of {le} \
                 (the original Python tutorial's protocol; use a dronecast drone)"
            );
        }
        let be = u64::from_be_bytes(prefix);
        return format!(
            "a length prefix of {be} bytes, far above the {MAX_CONTROL_LEN}-byte limit of a first \
             message; read little-endian it would be {le} (dronecast lengths are big-endian; is \
             this the Python tutorial's protocol?)"
        );
    }
    format!("unrecognised bytes {}", hex(&seen[..seen.len().min(16)]))
}

/// The length in `seen`'s first 8 bytes read little-endian, when that reading is a plausible
/// message length (1 byte to 4 GiB) — the Python tutorial's `struct.pack("Q", n)`. Read
/// big-endian, such a prefix is always at least 2^32, so it is never a dronecast first message.
pub(crate) fn little_endian_len(seen: &[u8]) -> Option<u64> {
    let le = u64::from_le_bytes(prefix(seen)?);
    (1..1 << 32).contains(&le).then_some(le)
}

fn prefix(seen: &[u8]) -> Option<[u8; 8]> {
    seen.get(..8)?.try_into().ok()
}

/// Describes a first message framed like a hello whose magic is not ours.
pub(crate) fn wrong_magic(magic: &[u8]) -> String {
    format!(
        "a hello with the wrong magic {} (a dronecast hello carries 44 43 53 54, \"DCST\")",
        hex(magic)
    )
}

/// The first line of a text protocol's opening, escaped and cut to 60 bytes.
fn first_line(seen: &[u8]) -> String {
    let line = seen.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or_default();
    printable(&line[..line.len().min(60)])
}

fn printable(bytes: &[u8]) -> String {
    bytes.iter().flat_map(|&b| std::ascii::escape_default(b)).map(char::from).collect()
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        let sep = if i == 0 { "" } else { " " };
        let _ = write!(out, "{sep}{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn names_http() {
        let d = describe(b"GET /video HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(d, "an HTTP request (GET /video HTTP/1.1)");
    }

    #[test]
    fn names_the_python_tutorial() {
        let mut bytes = 921_765u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0x80, 0x04, 0x95]);
        assert!(describe(&bytes).contains("Python pickle stream"), "{}", describe(&bytes));
    }

    #[test]
    fn names_an_http_response_as_a_response() {
        let d = describe(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n\r\n");
        assert!(d.starts_with("an HTTP response (HTTP/1.1 200 OK"), "{d}");
    }

    #[test]
    fn a_huge_big_endian_length_is_reported_as_such() {
        let d = describe(&(1u64 << 63).to_be_bytes());
        assert!(d.contains("length prefix of 9223372036854775808 bytes"), "{d}");
        assert!(d.contains("little-endian it would be 128"), "{d}");
    }

    #[test]
    fn names_tls_and_falls_back_to_hex() {
        assert!(describe(&[0x16, 0x03, 0x01, 0x02, 0, 0, 0, 0, 0]).contains("TLS"));
        assert_eq!(describe(&[0xff; 9]), "unrecognised bytes ff ff ff ff ff ff ff ff ff");
    }
}
