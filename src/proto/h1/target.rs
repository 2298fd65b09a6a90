//! The response side of an `http` scope, written once for both engines: the HTTP/1.x request
//! state and the HTTP/2 stream state implement the primitives of [`HttpTarget`] (how a head,
//! a body piece, trailers and an early hint are framed differs), and the mapping from the
//! app's `send` events onto them is the trait's provided [`HttpTarget::accept`], so the event
//! rules are the same on both. Static dispatch only: each engine gets its own copy.

use super::sse::SseTarget;
use pagi::{Error, Headers, ResponseBody, SendEvent};

/// A response the app's http send events are applied to.
pub(crate) trait HttpTarget {
    /// `http.response.start`: checks the head and holds it until the body says how to frame
    /// it.
    fn start_response(
        &mut self,
        status: u16,
        headers: Headers,
        trailers: bool,
    ) -> Result<(), Error>;
    /// Commits a held head, framed for streaming (`final_len`: the whole body length when
    /// known).
    fn encode_pending_head(&mut self, final_len: Option<u64>);
    /// `http.response.body`: one body piece.
    fn response_body(&mut self, body: ResponseBody) -> Result<(), Error>;
    /// `http.response.trailers`.
    fn trailers(&mut self, headers: Headers) -> Result<(), Error>;
    /// `http.response.early_hint`.
    fn early_hint(&mut self, headers: Headers) -> Result<(), Error>;
    /// Whether the response started (head accepted).
    fn response_started(&self) -> bool;
    /// Whether the response is complete.
    fn response_done(&self) -> bool;
    /// Asks the driver to write out what is buffered now and wake the app once it has.
    fn request_flush(&mut self);

    /// `http.fullflush`: commits a held head and asks for everything buffered to be written.
    fn fullflush(&mut self) -> Result<(), Error> {
        if !self.response_started() {
            return Err(Error::out_of_order(
                "http.fullflush before http.response.start",
            ));
        }
        self.encode_pending_head(None);
        self.request_flush();
        Ok(())
    }

    /// `send` for an `http` (or `sse`) scope: the event applied to the response.
    fn accept(&mut self, event: SendEvent) -> Result<(), Error>
    where
        Self: SseTarget,
    {
        if self.sse_mut().is_some() {
            return self.accept_sse(event);
        }
        match event {
            SendEvent::HttpResponseStart {
                status,
                headers,
                trailers,
            } => self.start_response(status, headers, trailers),
            SendEvent::HttpResponseBody(b) => self.response_body(b),
            SendEvent::HttpResponseTrailers { headers } => self.trailers(headers),
            SendEvent::HttpResponseEarlyHint { headers } => self.early_hint(headers),
            SendEvent::HttpFullflush => self.fullflush(),
            other => Err(Error::unsupported(format!(
                "{} is not an http event",
                other.kind()
            ))),
        }
    }
}
