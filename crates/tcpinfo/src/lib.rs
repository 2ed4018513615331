//! What the kernel knows about the send side of a TCP connection, from `TCP_INFO` (Linux):
//! the bytes it has not sent yet, the bytes sent but not acknowledged, the rate at which the
//! peer has been taking them, and the round-trip times.
//!
//! A relay uses this to pick a viewer's next frame only when the link has carried the last
//! one: a frame picked while the previous one still queues would wait behind it and arrive
//! old. The kernel's figures are the truth about the link; anything the application measures
//! (how long a write took) only sees its own buffer.
//!
//! This is the workspace's only `unsafe` code: one `getsockopt` into a plain struct whose
//! layout is the kernel's ABI (`include/uapi/linux/tcp.h`, only ever extended at the end).
//! On other systems [`of`] fails with [`std::io::ErrorKind::Unsupported`].

#![allow(unsafe_code)]
#![warn(missing_docs)]

use std::io;
use std::time::Duration;

/// A connection's send side, as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpInfo {
    /// Bytes written by the application that the kernel has not sent yet.
    pub notsent_bytes: u64,
    /// Bytes sent and not acknowledged yet (segments in flight × the sending MSS).
    pub unacked_bytes: u64,
    /// The most recent measured delivery rate, bytes a second; 0 before any measurement.
    pub delivery_rate: u64,
    /// The delivery rate was measured while the application, not the link, limited sending:
    /// the link may carry more.
    pub app_limited: bool,
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Lowest round-trip time seen: the path's delay without queueing.
    pub min_rtt: Duration,
    /// Bytes the peer has acknowledged over the connection's life.
    pub bytes_acked: u64,
}

impl TcpInfo {
    /// Bytes between the application and the peer: unsent plus unacknowledged.
    pub fn queued(&self) -> u64 {
        self.notsent_bytes + self.unacked_bytes
    }

    /// How long the queued bytes take to reach the peer at the measured delivery rate;
    /// `None` before the kernel has measured one.
    pub fn drain_time(&self) -> Option<Duration> {
        (self.delivery_rate > 0)
            .then(|| Duration::from_secs_f64(self.queued() as f64 / self.delivery_rate as f64))
    }
}

/// The send side of the TCP socket `fd`, from `getsockopt(fd, IPPROTO_TCP, TCP_INFO)`.
///
/// Safe for any descriptor: the kernel checks it, and a descriptor that is not a TCP socket
/// gives an error. The caller keeps the socket open while it asks.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn of(fd: &impl std::os::fd::AsRawFd) -> io::Result<TcpInfo> {
    of_raw(fd.as_raw_fd())
}

/// [`of`] for a raw descriptor (a socket another object owns). A descriptor that was closed
/// gives an error; one closed and reused gives another socket's figures, never undefined
/// behaviour.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn of_raw(fd: std::os::fd::RawFd) -> io::Result<TcpInfo> {
    let mut raw = linux::RawTcpInfo::default();
    let mut len = std::mem::size_of::<linux::RawTcpInfo>() as libc::socklen_t;
    // SAFETY: `raw` is a plain-old-data struct of `len` bytes that lives across the call;
    // the kernel writes at most `len` bytes into it and updates `len` to what it wrote.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut raw).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(raw.decode(len as usize))
}

/// `TCP_INFO` exists on Linux only.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn of(_fd: &impl std::os::fd::AsRawFd) -> io::Result<TcpInfo> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "TCP_INFO is Linux-only"))
}

/// `TCP_INFO` exists on Linux only.
#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
pub fn of_raw(_fd: std::os::fd::RawFd) -> io::Result<TcpInfo> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "TCP_INFO is Linux-only"))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux {
    use std::mem::offset_of;
    use std::time::Duration;

    use super::TcpInfo;

    /// `struct tcp_info` up to `tcpi_bytes_retrans`, as the kernel lays it out. libc's copy
    /// leaves out the byte holding `tcpi_delivery_rate_app_limited`, hence our own.
    #[repr(C)]
    #[derive(Debug, Default)]
    pub(crate) struct RawTcpInfo {
        state: u8,
        ca_state: u8,
        retransmits: u8,
        probes: u8,
        backoff: u8,
        options: u8,
        wscale: u8,
        /// Bit 0: `tcpi_delivery_rate_app_limited`; bits 1–2: `tcpi_fastopen_client_fail`.
        app_limited: u8,
        rto: u32,
        ato: u32,
        snd_mss: u32,
        rcv_mss: u32,
        unacked: u32,
        sacked: u32,
        lost: u32,
        retrans: u32,
        fackets: u32,
        last_data_sent: u32,
        last_ack_sent: u32,
        last_data_recv: u32,
        last_ack_recv: u32,
        pmtu: u32,
        rcv_ssthresh: u32,
        rtt: u32,
        rttvar: u32,
        snd_ssthresh: u32,
        snd_cwnd: u32,
        advmss: u32,
        reordering: u32,
        rcv_rtt: u32,
        rcv_space: u32,
        total_retrans: u32,
        pacing_rate: u64,
        max_pacing_rate: u64,
        bytes_acked: u64,
        bytes_received: u64,
        segs_out: u32,
        segs_in: u32,
        notsent_bytes: u32,
        min_rtt: u32,
        data_segs_in: u32,
        data_segs_out: u32,
        delivery_rate: u64,
        busy_time: u64,
        rwnd_limited: u64,
        sndbuf_limited: u64,
        delivered: u32,
        delivered_ce: u32,
        bytes_sent: u64,
        bytes_retrans: u64,
    }

    impl RawTcpInfo {
        /// The fields an old kernel did not fill (it wrote only `len` bytes) stay zero.
        pub(crate) fn decode(&self, len: usize) -> TcpInfo {
            let has = |end: usize| len >= end;
            let us = |v: u32| Duration::from_micros(u64::from(v));
            TcpInfo {
                notsent_bytes: if has(offset_of!(RawTcpInfo, min_rtt)) {
                    u64::from(self.notsent_bytes)
                } else {
                    0
                },
                unacked_bytes: u64::from(self.unacked) * u64::from(self.snd_mss),
                delivery_rate: if has(offset_of!(RawTcpInfo, busy_time)) {
                    self.delivery_rate
                } else {
                    0
                },
                app_limited: self.app_limited & 1 != 0,
                rtt: us(self.rtt),
                min_rtt: if has(offset_of!(RawTcpInfo, data_segs_in)) {
                    us(self.min_rtt)
                } else {
                    us(self.rtt)
                },
                bytes_acked: self.bytes_acked,
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Our layout agrees with libc's for every field both have.
        #[test]
        fn the_layout_is_the_kernels() {
            macro_rules! same {
                ($($ours:ident = $theirs:ident),* $(,)?) => {$(
                    assert_eq!(
                        offset_of!(RawTcpInfo, $ours),
                        offset_of!(libc::tcp_info, $theirs),
                        stringify!($ours)
                    );
                )*};
            }
            same!(
                rto = tcpi_rto,
                snd_mss = tcpi_snd_mss,
                unacked = tcpi_unacked,
                rtt = tcpi_rtt,
                total_retrans = tcpi_total_retrans,
                pacing_rate = tcpi_pacing_rate,
                bytes_acked = tcpi_bytes_acked,
                notsent_bytes = tcpi_notsent_bytes,
                min_rtt = tcpi_min_rtt,
                delivery_rate = tcpi_delivery_rate,
                delivered = tcpi_delivered,
                bytes_sent = tcpi_bytes_sent,
                bytes_retrans = tcpi_bytes_retrans,
            );
        }
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_loopback_connection_reports_what_it_sent_and_what_was_acknowledged() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
        let addr = listener.local_addr().expect("bound address");
        let mut sender = TcpStream::connect(addr).expect("connect on loopback");
        let (mut receiver, _) = listener.accept().expect("accept");
        sender.write_all(&[7u8; 100_000]).expect("write");
        let mut got = vec![0u8; 100_000];
        receiver.read_exact(&mut got).expect("read everything");
        // Read back, so acknowledged; the ack may trail the data by a moment.
        let mut info = of(&sender).expect("TCP_INFO on a TCP socket");
        for _ in 0..100 {
            if info.queued() == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
            info = of(&sender).expect("TCP_INFO");
        }
        assert_eq!(info.queued(), 0, "{info:?}");
        assert!(info.bytes_acked >= 100_000, "{info:?}");
        assert!(info.delivery_rate > 0, "{info:?}");
    }

    #[test]
    fn a_descriptor_that_is_not_a_tcp_socket_is_an_error() {
        let file = std::fs::File::open("/dev/null").expect("open /dev/null");
        assert!(of(&file).is_err());
    }
}
