package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/shoaldb/shoal/node"
)

// ErrUnauthorized: the server refused the request's bearer token (missing
// or wrong; HTTP 401).
var ErrUnauthorized = errors.New("client: unauthorized")

// APIError is an error answer of the server (or the error event that ended
// a watch stream). It unwraps to the sentinel error its code stands for, so
// errors.Is(err, node.ErrNotFound) works as with an embedded node; see the
// package documentation for the table.
type APIError struct {
	// Status is the HTTP status; 0 for an error event that ended a watch
	// stream.
	Status int
	// Code is the machine-readable code of the answer ("not_found",
	// "wrong_type", ...); "" from a server that sends none.
	Code string
	// Message is the server's message.
	Message string

	sentinel error
}

// Error returns the server's message.
func (e *APIError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	if e.Status == 0 {
		return "watch stream ended with an error event"
	}
	return fmt.Sprintf("server answered %d %s", e.Status, http.StatusText(e.Status))
}

// Unwrap returns the sentinel error the answer maps to, or nil.
func (e *APIError) Unwrap() error { return e.sentinel }

// codeErrors maps the codes of the API's error answers to sentinel
// errors. Codes without an entry ("bad_request", "no_endpoint",
// "method_not_allowed", "internal") are an *APIError only.
var codeErrors = map[string]error{
	"invalid_key":        node.ErrInvalidKey,
	"invalid_value":      node.ErrInvalidValue,
	"unauthorized":       ErrUnauthorized,
	"not_found":          node.ErrNotFound,
	"wrong_type":         node.ErrWrongType,
	"offline":            node.ErrOffline,
	"overflow":           node.ErrOverflow,
	"offset_unavailable": node.ErrOffsetUnavailable,
	"too_large":          node.ErrTooLarge,
	"shutting_down":      node.ErrClosed,
	"closed":             node.ErrClosed,
	"read_only":          node.ErrReadOnly,
	"slow_subscriber":    node.ErrSlowSubscriber,
	"timeout":            context.DeadlineExceeded,
}

// statusErrors is the fallback for answers without a code: the sentinel
// each status most often means.
var statusErrors = map[int]error{
	http.StatusUnauthorized:          ErrUnauthorized,
	http.StatusNotFound:              node.ErrNotFound,
	http.StatusConflict:              node.ErrWrongType,
	http.StatusGone:                  node.ErrOffsetUnavailable,
	http.StatusRequestEntityTooLarge: node.ErrTooLarge,
	http.StatusGatewayTimeout:        context.DeadlineExceeded,
}

// newAPIError builds the error of an answer with status, code and message.
func newAPIError(status int, code, msg string) *APIError {
	e := &APIError{Status: status, Code: code, Message: msg}
	if s, ok := codeErrors[code]; ok {
		e.sentinel = s
	} else if code == "" {
		e.sentinel = statusErrors[status]
	}
	return e
}

// errorBody is the JSON of an error answer and of an error event.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// readAPIError turns an error answer into an *APIError, keeping the
// server's message (or the body's text when it is not the API's JSON).
func readAPIError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e errorBody
	msg, code := "", ""
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg, code = e.Error, e.Code
	} else if s := strings.TrimSpace(string(b)); s != "" {
		msg = s
	}
	return newAPIError(resp.StatusCode, code, msg)
}

// eventError is the error of an "event: error" that ended a watch stream.
func eventError(data string) error {
	var e errorBody
	if json.Unmarshal([]byte(data), &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(data)
	}
	return newAPIError(0, e.Code, e.Error)
}
