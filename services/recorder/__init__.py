"""The recorder: follows a namespace's streams and archives them to Parquet by stream and hour."""
