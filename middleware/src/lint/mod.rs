//! Lint: checks an app's events against the spec. (In progress.)
