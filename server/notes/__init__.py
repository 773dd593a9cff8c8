"""The shared notes channel: CRDT documents, per-document permissions, the durable update log,
plan finalisation and FHIR export. Knows nothing of media. Arrives with the notes issue."""
