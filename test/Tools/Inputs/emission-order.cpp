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
