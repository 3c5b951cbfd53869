  // gl.js: A small WebGL point renderer: every book one round point (16-bit position,
  // RGB colour, 8-bit size in one attribute each), a highlight pass and lines.
  // The points are drawn into a texture a little larger than the screen (drawFull); a
  // frame while the camera moves only shows that picture moved and scaled (present),
  // with the chosen book, its neighbours and their lines drawn live on top. A software
  // rasteriser (SwiftShader) spends about a microsecond per point, so at a million books
  // the full drawing is the one slow frame, when the camera comes to rest.
  // ---- WebGL ------------------------------------------------------------------
  var POINT_VS = [
    'attribute vec2 a_pos;',          // 0..1 map units (16-bit normalised)
    'attribute vec4 a_col;',          // rgb colour, a = size 0..1
    'uniform vec2 u_centre;',
    'uniform vec2 u_scale;',          // map units -> clip space
    'uniform float u_base;',
    'uniform float u_grow;',
    'varying vec3 v_col;',
    'void main() {',
    '  vec2 p = (a_pos - u_centre) * u_scale;',
    '  gl_Position = vec4(p, 0.0, 1.0);',
    '  gl_PointSize = u_base + a_col.a * u_grow;',
    '  v_col = a_col.rgb;',
    '}'].join('\n');
  var POINT_FS = [
    'precision mediump float;',
    'varying vec3 v_col;',
    'uniform float u_alpha;',
    'uniform float u_ring;',          // > 0: a dark outline (highlighted books)
    'void main() {',
    '  vec2 d = gl_PointCoord * 2.0 - 1.0;',
    '  float r2 = dot(d, d);',
    '  if (r2 > 1.0) discard;',
    '  vec3 c = (u_ring > 0.0 && r2 > 0.5) ? vec3(0.12, 0.14, 0.16) : v_col;',
    '  gl_FragColor = vec4(c, u_alpha);',
    '}'].join('\n');
  var LINE_VS = [
    'attribute vec2 a_pos;',
    'uniform vec2 u_centre;',
    'uniform vec2 u_scale;',
    'void main() { gl_Position = vec4((a_pos - u_centre) * u_scale, 0.0, 1.0); }'].join('\n');
  var BLIT_VS = [
    'attribute vec2 a_pos;',          // the unit square's corners
    'uniform vec4 u_rect;',           // where the picture goes, clip space x0 y0 x1 y1
    'varying vec2 v_uv;',
    'void main() { v_uv = a_pos; gl_Position = vec4(mix(u_rect.xy, u_rect.zw, a_pos), 0.0, 1.0); }'
  ].join('\n');
  var BLIT_FS = [
    'precision mediump float;',
    'uniform sampler2D u_tex;',
    'varying vec2 v_uv;',
    'void main() { gl_FragColor = texture2D(u_tex, v_uv); }'].join('\n');
  var LINE_FS = [
    'precision mediump float;',
    'uniform vec4 u_colour;',
    'void main() { gl_FragColor = u_colour; }'].join('\n');

  function createRenderer(canvas) {
    var gl = null;
    try {
      gl = canvas.getContext('webgl', { antialias: false, alpha: false, depth: false,
                                        stencil: false, premultipliedAlpha: false });
    } catch (err) { gl = null; }
    if (!gl) return null;

    function program(vs, fs) {
      var p = gl.createProgram();
      [[gl.VERTEX_SHADER, vs], [gl.FRAGMENT_SHADER, fs]].forEach(function (s) {
        var sh = gl.createShader(s[0]);
        gl.shaderSource(sh, s[1]);
        gl.compileShader(sh);
        if (!gl.getShaderParameter(sh, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(sh));
        gl.attachShader(p, sh);
      });
      gl.linkProgram(p);
      if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(p));
      var loc = { program: p };
      ['a_pos', 'a_col'].forEach(function (a) { loc[a] = gl.getAttribLocation(p, a); });
      ['u_centre', 'u_scale', 'u_base', 'u_grow', 'u_alpha', 'u_ring', 'u_colour', 'u_rect', 'u_tex']
        .forEach(function (u) { loc[u] = gl.getUniformLocation(p, u); });
      return loc;
    }
    var points = program(POINT_VS, POINT_FS), lines = program(LINE_VS, LINE_FS);
    var blit = program(BLIT_VS, BLIT_FS);
    var square = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, square);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([0, 0, 1, 0, 0, 1, 1, 1]), gl.STATIC_DRAW);
    var tex = gl.createTexture(), fbo = gl.createFramebuffer(), cache = null;
    var texW = 0, texH = 0, MARGIN = 1.5;
    var posBuf = gl.createBuffer(), colBuf = gl.createBuffer();
    var hiPos = gl.createBuffer(), hiCol = gl.createBuffer(), linePos = gl.createBuffer();
    var count = 0, hiCount = 0, lineCount = 0, selected = false, order = null;

    // order: the rows in drawing order (the spatial index's cells one after another, so a
    // zoomed-in view draws only the ranges it can see; in each cell the most-read last, on top).
    function setPositions(xs, ys, drawOrder) {
      order = drawOrder;
      count = order.length;
      var buf = new Uint16Array(2 * count);
      for (var i = 0; i < count; i++) { buf[2 * i] = xs[order[i]]; buf[2 * i + 1] = ys[order[i]]; }
      gl.bindBuffer(gl.ARRAY_BUFFER, posBuf);
      gl.bufferData(gl.ARRAY_BUFFER, buf, gl.STATIC_DRAW);
    }
    function setColours(rgbOfRow, sizeOfRow) {
      var buf = new Uint8Array(4 * count);
      for (var i = 0; i < count; i++) {
        var r = order[i], c = rgbOfRow(r);
        buf[4 * i] = c[0]; buf[4 * i + 1] = c[1]; buf[4 * i + 2] = c[2]; buf[4 * i + 3] = sizeOfRow(r);
      }
      gl.bindBuffer(gl.ARRAY_BUFFER, colBuf);
      gl.bufferData(gl.ARRAY_BUFFER, buf, gl.STATIC_DRAW);
    }
    // rows: highlighted books (first = the chosen one); pairs: [a, b, a, b, ...] rows.
    function setHighlight(rows, pairs, xs, ys, rgbOfRow) {
      hiCount = rows.length;
      selected = rows.length > 0;
      var pos = new Uint16Array(2 * hiCount), col = new Uint8Array(4 * hiCount);
      for (var i = hiCount - 1, j = 0; i >= 0; i--, j++) {   // the chosen book drawn last
        var r = rows[i], c = rgbOfRow(r);
        pos[2 * j] = xs[r]; pos[2 * j + 1] = ys[r];
        col[4 * j] = c[0]; col[4 * j + 1] = c[1]; col[4 * j + 2] = c[2]; col[4 * j + 3] = i === 0 ? 255 : 120;
      }
      gl.bindBuffer(gl.ARRAY_BUFFER, hiPos);
      gl.bufferData(gl.ARRAY_BUFFER, pos, gl.DYNAMIC_DRAW);
      gl.bindBuffer(gl.ARRAY_BUFFER, hiCol);
      gl.bufferData(gl.ARRAY_BUFFER, col, gl.DYNAMIC_DRAW);
      lineCount = pairs.length;
      var lp = new Uint16Array(2 * lineCount);
      for (var k = 0; k < lineCount; k++) { lp[2 * k] = xs[pairs[k]]; lp[2 * k + 1] = ys[pairs[k]]; }
      gl.bindBuffer(gl.ARRAY_BUFFER, linePos);
      gl.bufferData(gl.ARRAY_BUFFER, lp, gl.DYNAMIC_DRAW);
    }

    // ranges: [first, end, first, end, ...] of the drawing order; null = all of it.
    function bindPoints(pb, cb, n, ranges) {
      gl.bindBuffer(gl.ARRAY_BUFFER, pb);
      gl.enableVertexAttribArray(points.a_pos);
      gl.vertexAttribPointer(points.a_pos, 2, gl.UNSIGNED_SHORT, true, 0, 0);
      gl.bindBuffer(gl.ARRAY_BUFFER, cb);
      gl.enableVertexAttribArray(points.a_col);
      gl.vertexAttribPointer(points.a_col, 4, gl.UNSIGNED_BYTE, true, 0, 0);
      if (!ranges) { gl.drawArrays(gl.POINTS, 0, n); return n; }
      var drawn = 0;
      for (var i = 0; i < ranges.length; i += 2) {
        if (ranges[i + 1] > ranges[i]) gl.drawArrays(gl.POINTS, ranges[i], ranges[i + 1] - ranges[i]);
        drawn += ranges[i + 1] - ranges[i];
      }
      return drawn;
    }

    function ensureTexture() {
      var max = gl.getParameter(gl.MAX_TEXTURE_SIZE);
      var w = Math.min(max, Math.round(canvas.width * MARGIN)), h = Math.min(max, Math.round(canvas.height * MARGIN));
      if (w === texW && h === texH) return;
      texW = w; texH = h;
      gl.bindTexture(gl.TEXTURE_2D, tex);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, w, h, 0, gl.RGBA, gl.UNSIGNED_BYTE, null);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
      gl.bindFramebuffer(gl.FRAMEBUFFER, fbo);
      gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, tex, 0);
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      cache = null;
    }

    function clearTo(w, h) {
      gl.viewport(0, 0, w, h);
      gl.clearColor(MAP_BG[0] / 255, MAP_BG[1] / 255, MAP_BG[2] / 255, 1);
      gl.clear(gl.COLOR_BUFFER_BIT);
      gl.enable(gl.BLEND);
      gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
    }

    function usePoints(cam, w, h) {
      gl.useProgram(points.program);
      gl.uniform2f(points.u_centre, cam.cx, cam.cy);
      gl.uniform2f(points.u_scale, 2 * cam.s / w, 2 * cam.s / h);
    }

    // cam: {cx, cy (map units), s (device px per map unit), base, grow (device px)}.
    // Every book (in the ranges that can be on the texture), into the texture centred on
    // the camera; then shown. Returns the number of books drawn.
    function drawFull(cam, ranges) {
      ensureTexture();
      gl.bindFramebuffer(gl.FRAMEBUFFER, fbo);
      clearTo(texW, texH);
      usePoints(cam, texW, texH);
      gl.uniform1f(points.u_base, cam.base);
      gl.uniform1f(points.u_grow, cam.grow);
      gl.uniform1f(points.u_alpha, selected ? 0.3 : 0.9);
      gl.uniform1f(points.u_ring, 0);
      var drawn = count ? bindPoints(posBuf, colBuf, count, ranges) : 0;
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      cache = { cx: cam.cx, cy: cam.cy, s: cam.s };
      present(cam);
      return drawn;
    }

    // The last full picture moved and scaled to the camera, and the highlight live.
    function present(cam) {
      var w = canvas.width, h = canvas.height;
      clearTo(w, h);
      if (cache) {
        var hw = texW / 2 / cache.s, hh = texH / 2 / cache.s;
        var kx = 2 * cam.s / w, ky = 2 * cam.s / h;
        gl.useProgram(blit.program);
        gl.disable(gl.BLEND);
        gl.uniform4f(blit.u_rect, (cache.cx - hw - cam.cx) * kx, (cache.cy - hh - cam.cy) * ky,
                     (cache.cx + hw - cam.cx) * kx, (cache.cy + hh - cam.cy) * ky);
        gl.activeTexture(gl.TEXTURE0);
        gl.bindTexture(gl.TEXTURE_2D, tex);
        gl.uniform1i(blit.u_tex, 0);
        gl.bindBuffer(gl.ARRAY_BUFFER, square);
        gl.disableVertexAttribArray(points.a_col);
        gl.enableVertexAttribArray(blit.a_pos);
        gl.vertexAttribPointer(blit.a_pos, 2, gl.FLOAT, false, 0, 0);
        gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
        gl.enable(gl.BLEND);
      }
      if (lineCount) {
        gl.useProgram(lines.program);
        gl.disableVertexAttribArray(points.a_col);
        gl.uniform2f(lines.u_centre, cam.cx, cam.cy);
        gl.uniform2f(lines.u_scale, 2 * cam.s / w, 2 * cam.s / h);
        gl.uniform4f(lines.u_colour, 0.12, 0.14, 0.16, 0.55);
        gl.bindBuffer(gl.ARRAY_BUFFER, linePos);
        gl.enableVertexAttribArray(lines.a_pos);
        gl.vertexAttribPointer(lines.a_pos, 2, gl.UNSIGNED_SHORT, true, 0, 0);
        gl.drawArrays(gl.LINES, 0, lineCount);
      }
      if (hiCount) {
        usePoints(cam, w, h);
        gl.uniform1f(points.u_base, cam.base + 7 * (window.devicePixelRatio || 1));
        gl.uniform1f(points.u_grow, 9 * (window.devicePixelRatio || 1));
        gl.uniform1f(points.u_alpha, 1);
        gl.uniform1f(points.u_ring, 1);
        bindPoints(hiPos, hiCol, hiCount);
      }
    }

    // Waits for the GPU (a one-pixel read), so a timed frame is a finished frame.
    function finish() {
      var px = new Uint8Array(4);
      gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
    }
    return { gl: gl, margin: MARGIN, setPositions: setPositions, setColours: setColours,
             setHighlight: setHighlight, drawFull: drawFull, present: present, finish: finish,
             hasPicture: function () { return cache !== null; } };
  }
