"""How a source listing and container indices become days, shards and file trees."""
