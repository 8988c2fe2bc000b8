// Input of emission-order.test (not compiled).
void flagged(LoopEmitter &e, Value a, Value b) {
  Value sum = e.add(e.load(a, {}), e.load(b, {}));
  auto twice = [&](Value v) { return e.add(v, v); };
  Value x = e.mul(twice(a), e.f32(2.0f));
  Value y = arith::AddIOp::create(e.b, e.index(0), e.index(1));
}
void fine(LoopEmitter &e, Value a, Value b) {
  Value la = e.load(a, {});
  Value sum = e.add(la, e.load(b, {}));
  auto pure = [&](Value v) { return v.getType(); };
  Value t = e.alloc(pure(a), {});
  SmallVector<Value> both{e.load(a, {}), e.load(b, {})};
  e.loop(la, sum, [&](Value i) { e.store(i, a, {e.index(0)}); });
  // e.add(e.load(a), e.load(b)) in a comment is not code.
}
void flaggedToo(LoopEmitter &e, Value x) {
  Value r = e.select(e.isNaN(x), x, e.f32(0.0f));
}
// Inside the emitters' members, their methods are called unqualified.
void LoopEmitter::copyLike(Value from) {
  loop(index(0), dim(from, 0), [&](Value i) {});
  Value size = dim(from, 0);
  loop(index(0), size, [&](Value i) {});
}
