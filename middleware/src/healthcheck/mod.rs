//! Healthcheck: an endpoint answered without the app. (In progress.)
