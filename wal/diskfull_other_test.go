//go:build !linux

package wal

func fsizeChild() {}
