package ops

// SetMaxGetResponse lets tests shorten the server's chunk answers.
func SetMaxGetResponse(n int64) func() {
	old := maxGetResponse
	maxGetResponse = n
	return func() { maxGetResponse = old }
}
