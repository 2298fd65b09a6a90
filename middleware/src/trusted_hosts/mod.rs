//! TrustedHosts: a `Host` allow-list. (In progress.)
