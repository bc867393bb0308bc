-- depends: 0002.calls
-- In-call actions a device performs (reference FAQ 1.2, setCustomBtnText): e.g. {open_door}.
ALTER TABLE devices ADD COLUMN actions text[] NOT NULL DEFAULT '{}';
