package wal

const crashChildEnv = "SHOAL_WAL_CRASH_CHILD"

func crashChild() {}
