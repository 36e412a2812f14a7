//go:build !go1.18
// +build !go1.18

// podsec repair of reflect2 v1.0.1: before Go 1.18 reflect.mapiterinit allocates the
// iterator itself and returns it.

package reflect2

import "unsafe"

//go:linkname mapiterinit reflect.mapiterinit
func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer) *hiter

// UnsafeIterate starts an iteration over the map stored at obj.
func (type2 *UnsafeMapType) UnsafeIterate(obj unsafe.Pointer) MapIterator {
	return &UnsafeMapIterator{
		hiter:      mapiterinit(type2.rtype, *(*unsafe.Pointer)(obj)),
		pKeyRType:  type2.pKeyRType,
		pElemRType: type2.pElemRType,
	}
}
