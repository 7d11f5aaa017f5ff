// The object panel's colour control (sam_demo/page.py: COLOUR_TEMPLATE, COLOUR_BOOT): a native
// <input type="color"> showing the selected object's colour, the component's value ("#rrggbb", or "" when no
// object is selected: the control is then disabled). It is keyboard accessible as the browser makes it (one Tab
// stop; Enter or Space opens the picker) and named by its label. A colour is sent once, when the picker closes
// ('change', not every 'input' while it is open), as the component's 'pick' event {color: "#rrggbb"}: one
// undoable step. The server checks the value (sam_demo.editor.parse_color) and answers with the scene, which
// redraws the object in its new colour everywhere.

export const HEX = /^#[0-9a-f]{6}$/i;

export function mount({element, trigger, props, watch}) {
  const input = element.querySelector('input[type=color]');
  const show = () => {
    const value = String(props.value || '');
    input.disabled = !HEX.test(value);
    if (!input.disabled) input.value = value.toLowerCase();
  };
  input.addEventListener('change', () => {
    if (HEX.test(input.value) && input.value !== String(props.value || '').toLowerCase()) {
      trigger('pick', {color: input.value});
    }
  });
  watch('value', show);
  show();
  return {input};
}
