//! `switchboard connector test`: fixtures matched on method, URL, body and headers; `--map-host`; `--record`.
