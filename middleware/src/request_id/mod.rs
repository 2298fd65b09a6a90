//! RequestId: an id per request, from the client or made up. (In progress.)
