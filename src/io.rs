//! What the HTTP engine needs of a connection's byte stream.

use std::io;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};

/// A connection the server can speak HTTP on.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Ready when a read would not block. Lets an idle connection wait without holding a read
    /// buffer; streams that cannot tell say `Ready` (the caller then reads with a buffer).
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Io for tokio::net::TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::TcpStream::poll_read_ready(self, cx)
    }
}

impl Io for tokio::net::UnixStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::UnixStream::poll_read_ready(self, cx)
    }
}

/// A connection whose first bytes were already read: they are replayed to the next reader
/// before anything more is read from the socket. Used after the PROXY protocol header, so
/// bytes that arrived with it (a TLS ClientHello, an HTTP request) reach the next layer
/// intact. Writes go straight to the inner stream.
#[derive(Debug)]
pub struct Prefixed<I> {
    prefix: bytes::Bytes,
    inner: I,
}

impl<I> Prefixed<I> {
    /// `inner`, with `prefix` to be read first.
    pub fn new(prefix: bytes::Bytes, inner: I) -> Self {
        Prefixed { prefix, inner }
    }

    /// The bytes not read yet from the prefix.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The inner stream.
    pub fn get_ref(&self) -> &I {
        &self.inner
    }

    /// The unread prefix and the inner stream.
    pub fn into_parts(self) -> (bytes::Bytes, I) {
        (self.prefix, self.inner)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.is_empty() {
            return std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.prefix.len().min(buf.remaining());
        buf.put_slice(&this.prefix[..n]);
        if n == this.prefix.len() {
            // Let go of the buffer the prefix was cut from.
            this.prefix = bytes::Bytes::new();
        } else {
            bytes::Buf::advance(&mut this.prefix, n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<I: Io> Io for Prefixed<I> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            self.inner.poll_read_ready(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn replays_the_prefix_then_reads_the_stream() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut p = Prefixed::new(bytes::Bytes::from_static(b"hello "), a);
        assert_eq!(p.prefix(), b"hello ");
        b.write_all(b"world").await.unwrap();
        drop(b);
        let mut small = [0u8; 4];
        p.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"hell");
        let mut rest = Vec::new();
        p.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"o world");
        assert!(p.prefix().is_empty());
    }

    /// A stream that never has anything to read and records what is written.
    #[derive(Default)]
    struct Quiet(Vec<u8>);

    impl AsyncRead for Quiet {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for Quiet {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().0.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl Io for Quiet {
        fn poll_read_ready(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn writes_go_through_and_readiness_sees_the_prefix() {
        let mut p = Prefixed::new(bytes::Bytes::from_static(b"x"), Quiet::default());
        let ready = || std::future::poll_fn(|cx| Poll::Ready(p.poll_read_ready(cx)));
        assert!(
            matches!(ready().await, Poll::Ready(Ok(()))),
            "the prefix is readable"
        );
        let mut one = [0u8; 1];
        p.read_exact(&mut one).await.unwrap();
        assert_eq!(&one, b"x");
        let ready = std::future::poll_fn(|cx| Poll::Ready(p.poll_read_ready(cx))).await;
        assert!(
            ready.is_pending(),
            "with the prefix used up, the stream decides"
        );
        p.write_all(b"pong").await.unwrap();
        p.flush().await.unwrap();
        let (rest, inner) = p.into_parts();
        assert!(rest.is_empty());
        assert_eq!(inner.0, b"pong");
    }
}
