//! Naming what a peer that does not speak dronecast sent, so the log says "an HTTP request"
//! rather than "bad length".

use std::fmt::Write;

const HTTP_STARTS: [&[u8]; 10] = [
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
    b"HTTP/",
];

/// The pickle opcode that opens every pickle of protocol 2 or later.
const PICKLE_PROTO: u8 = 0x80;

/// Describes the first bytes a peer sent, for an error message.
pub fn describe(seen: &[u8]) -> String {
    if HTTP_STARTS.iter().any(|m| seen.starts_with(m)) {
        let line = seen.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or_default();
        return format!("an HTTP request ({})", printable(&line[..line.len().min(60)]));
    }
    if seen.starts_with(&[0x16, 0x03]) {
        return "a TLS handshake (is the peer configured for https/TLS?)".into();
    }
    if seen.starts_with(b"SSH-") {
        return "an SSH greeting".into();
    }
    if seen.len() >= 8 {
        let le = u64::from_le_bytes(seen[..8].try_into().unwrap_or_default());
        if (1..1 << 32).contains(&le) {
            if seen.get(8) == Some(&PICKLE_PROTO) {
                return format!(
                    "a Python pickle stream with a little-endian length of {le} \
                     (the original Python tutorial's protocol; use a dronecast drone)"
                );
            }
            return format!(
                "a little-endian length prefix of {le} (dronecast lengths are big-endian; \
                 is this the Python tutorial's protocol?)"
            );
        }
    }
    format!("unrecognised bytes {}", hex(&seen[..seen.len().min(16)]))
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
    fn names_tls_and_falls_back_to_hex() {
        assert!(describe(&[0x16, 0x03, 0x01, 0x02, 0, 0, 0, 0, 0]).contains("TLS"));
        assert_eq!(describe(&[0xff; 9]), "unrecognised bytes ff ff ff ff ff ff ff ff ff");
    }
}
