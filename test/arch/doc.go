// Package arch holds the architecture's import rules and the test that
// enforces them (TestImportRules): which monitord package may never import
// which. The picture and the reasons are in docs/architecture.md. The
// package has no code outside its tests.
package arch
