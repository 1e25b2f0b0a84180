-- Room for a per-stream encryption key id (crypto-shredding: erase a stream's key and its events
-- are unreadable everywhere, backups included). Nothing writes it yet; NULL: not encrypted.
ALTER TABLE sekiban_streams ADD COLUMN key_id TEXT;
