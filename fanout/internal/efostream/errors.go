package efostream

import "errors"

// errFrameLimit: a frame whose prelude claims more than the event-stream
// format allows (16 MiB of payload, 128 KiB of headers), or headers longer
// than the frame. The SDK's decoder would try to read such a frame whole
// (up to 4 GiB); fanoutd ends the subscription instead, so that memory
// stays bounded.
var errFrameLimit = errors.New("event stream frame over the format's limits (16 MiB payload, 128 KiB headers)")

// errSDKEnd is the slow path's answer for a whole frame after which the SDK would
// read no more: Next ends the stream, as the SDK does.
var errSDKEnd = errors.New("the SDK ends the event stream here")
