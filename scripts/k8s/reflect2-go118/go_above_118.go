//go:build go1.18
// +build go1.18

// podsec repair of reflect2 v1.0.1 for Go >= 1.18: reflect.mapiterinit takes a
// caller-allocated iterator instead of returning one.

package reflect2

import "unsafe"

//go:linkname mapiterinit reflect.mapiterinit
func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer, it *hiter)

// UnsafeIterate starts an iteration over the map stored at obj.
func (type2 *UnsafeMapType) UnsafeIterate(obj unsafe.Pointer) MapIterator {
	iter := &UnsafeMapIterator{
		hiter:      new(hiter),
		pKeyRType:  type2.pKeyRType,
		pElemRType: type2.pElemRType,
	}
	mapiterinit(type2.rtype, *(*unsafe.Pointer)(obj), iter.hiter)
	return iter
}
