//! XForwardedFor: proxy headers, applied only for trusted peers. (In progress.)
