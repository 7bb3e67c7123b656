package tasks

// growStack grows the calling goroutine's stack once, while it is still
// shallow, to about the size an order's step reaches. asynq runs each task
// on a new goroutine, which starts with a small stack; an order's step
// (ledger scripts, the provider's parsing, signing and HTTP call, logging)
// goes deep enough to make the runtime grow it two or three times over,
// each growth copying the whole stack frame by frame, deep by then. Grown
// here, the copy holds a few frames. (In the worker comparison this took
// the worker's CPU an order down by about 9 %: the growths had cost that.)
//
//go:noinline
func growStack() {
	var frame [stackFrame]byte
	touchStack(frame[:])
}

// stackFrame is growStack's frame: with what asynq's goroutine holds
// below it, the stack ends at the size the step needs.
const stackFrame = 16 << 10

//go:noinline
func touchStack(b []byte) { b[len(b)-1] = 1 }
