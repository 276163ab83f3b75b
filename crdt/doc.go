// Package crdt is shoal's pure CRDT core (work in progress).
package crdt
