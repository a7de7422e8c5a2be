//! The bundled connectors ship inside the binary, and `connector new` works anywhere.
