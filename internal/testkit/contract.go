package testkit

import (
	"bytes"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/rollcall/rollcall/events"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Contract checks events against the subscribers' contract both ways a subscriber
// can: events.Decode, and the JSON Schema in docs/events.schema.json.
type Contract struct{ schema *jsonschema.Schema }

// NewContract compiles the schema, with formats asserted.
func NewContract(t testing.TB) *Contract {
	return &Contract{schema: Schema(t, "events.schema.json")}
}

// Schema compiles one of the JSON Schemas in docs/, with formats asserted.
func Schema(t testing.TB, name string) *jsonschema.Schema {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(here), "..", "..", "docs", name)
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile(path)
	if err != nil {
		t.Fatalf("compile %s: %v", path, err)
	}
	return s
}

// Check returns why data breaks the contract, or nil.
func (c *Contract) Check(data []byte) error {
	if _, err := events.Decode(data); err != nil {
		return err
	}
	return c.Schema(data)
}

// Schema returns why data breaks the JSON Schema alone, or nil.
func (c *Contract) Schema(data []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return err
	}
	if err := c.schema.Validate(v); err != nil {
		return fmt.Errorf("events.schema.json: %w", err)
	}
	return nil
}
